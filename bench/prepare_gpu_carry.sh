#!/usr/bin/env bash
# Builds what bench/gpu_check.sh wants carried to a GPU machine that has no network (both paths are git-ignored):
#   bench/data       the four Fashion-MNIST idx .gz files (30 MB), from $FASHION_MNIST_DIR
#   bench/.gpu_deps  fastcore, tqdm and pytest as pure-Python packages (18 MB), used only where the machine lacks them
#   PYTHON=.venv/bin/python bash bench/prepare_gpu_carry.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
mkdir -p "$here/data"
cp "$src"/*-ubyte.gz "$here/data/"
"${PYTHON:-python3}" -m pip install -q --target "$here/.gpu_deps" --no-deps \
  fastcore tqdm pytest pluggy iniconfig packaging pygments tomli exceptiongroup
du -sh "$here/data" "$here/.gpu_deps"
