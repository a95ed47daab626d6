#!/usr/bin/env bash
# Installs the peer frameworks the benchmarks compare against (fastai, Lightning, Ignite) into bench/.peers,
# which cpu_bench.py and gpu_bench.py put on sys.path. They are not AIsaac dependencies.
# --no-deps keeps pip from touching the torch already installed (fastai pins torch below some versions), so every
# package a peer needs is named here, at a version that imports with torch 2.14 (fastcore, numpy and torchmetrics
# come from the test extra). fastprogress stays at 1.0.5: from 1.1 it needs python-fasthtml, and fastai then fails to
# import. The script fails when a peer does not import, so no benchmark silently loses a row.
#   PYTHON=/work/main/.venv/bin/python bench/setup_peers.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
py=${PYTHON:-python3}
"$py" -m pip install -q --upgrade --target "$here/.peers" --no-deps \
  fastai==2.8.12 fastprogress==1.0.5 fastdownload==0.0.8 fasttransform==0.0.5 plum-dispatch==2.10.1 \
  beartype==0.23.1 rich==15.0.0 markdown-it-py==4.3.0 mdurl==0.1.2 pygments==2.21.0 \
  pytorch-lightning==2.6.6 pytorch-ignite==0.5.5 \
  requests==2.34.2 urllib3==2.8.0 idna==3.20 charset-normalizer==3.5.3 certifi==2026.10.19.post1 \
  2>&1 | sed "/^WARNING: Location '.*' is ignored/d"
# The modules the benchmarks import (cpu_bench.py's PEER_MODULES and fastai's progress callback).
PYTHONPATH="$here/.peers" "$py" - <<'PY'
import sys
failed = []
for name in ("fastai.learner", "fastai.callback.progress", "pytorch_lightning", "ignite.engine"):
    try: __import__(name); print("ok  ", name)
    except Exception as e: failed.append(name); print(f"FAIL {name}: {type(e).__name__}: {e}", file=sys.stderr)
if failed:
    sys.exit(f"setup_peers: {', '.join(failed)} did not import; the benchmarks would run without them. Fix the "
             f"versions pinned in bench/setup_peers.sh (a peer's new release may need a package not listed there).")
PY
