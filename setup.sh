#!/usr/bin/env bash
# Sets up a development environment in .venv: PyTorch with torchvision, AIsaac with its test extras, and the
# Fashion-MNIST files (Debian's dataset-fashion-mnist) when apt-get can install them.
#   bash setup.sh            # then: .venv/bin/aisaac demo    and    .venv/bin/python -m pytest
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist) >/dev/null 2>&1 \
      || echo "setup: could not install dataset-fashion-mnist; the demo will use scikit-learn's digits instead"
  else
    echo "setup: Fashion-MNIST not found (sudo apt-get install dataset-fashion-mnist); the demo will use scikit-learn's digits"
  fi
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
# pip as asked, without the notes some machines print for every package about local indexes it cannot read.
pip_install() { .venv/bin/python -m pip install -q "$@" 2>&1 | sed "/^WARNING: Location '.*' is ignored/d"; }
# torch and torchvision must be a matching pair; GPU users may install their own build first and drop this line.
pip_install torch==2.14.1 torchvision==0.29.1
# editable_mode=compat: a plain path in a .pth file rather than an import hook, so that mypy and pyright run from
# outside the checkout find AIsaac too (setuptools' default editable finder is invisible to type checkers).
pip_install -e ".[test,docs]" --config-settings editable_mode=compat
echo "setup: done (.venv). Next: .venv/bin/aisaac demo"
