#!/usr/bin/env bash
# Installs the peer frameworks the benchmarks compare against (fastai, Lightning, Ignite) into bench/.peers,
# which cpu_bench.py and gpu_bench.py put on sys.path. They are not AIsaac dependencies.
# --no-deps keeps pip from touching the torch already installed (fastai pins torch below some versions).
#   PYTHON=/work/main/.venv/bin/python bench/setup_peers.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
py=${PYTHON:-python3}
"$py" -m pip install -q --target "$here/.peers" --no-deps \
  fastai fastdownload fasttransform plum-dispatch beartype rich markdown-it-py mdurl pygments \
  pytorch-lightning pytorch-ignite requests urllib3 idna charset-normalizer certifi
PYTHONPATH="$here/.peers" "$py" - <<'PY'
for name in ("fastai.learner", "pytorch_lightning", "ignite.engine"):
    try: __import__(name); print("ok  ", name)
    except Exception as e: print("FAIL", name, type(e).__name__, e)
PY
