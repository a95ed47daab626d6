#!/usr/bin/env bash
# Re-execute the notebooks in place (so their committed outputs come from a real run), then build the site strictly.
# Usage: docs/build.sh [notebook ...]   (default: every docs/*.ipynb). Needs: pip install -e '.[docs]'
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"
# The kernel must import this checkout's AIsaac, whatever else is installed.
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
notebooks=("$@")
[ ${#notebooks[@]} -eq 0 ] && notebooks=(docs/*.ipynb)
"$PYTHON" - "${notebooks[@]}" <<'PY'
import sys, time
import nbformat
from nbclient import NotebookClient
for path in sys.argv[1:]:
    start = time.monotonic()
    nb = nbformat.read(path, as_version=4)
    # record_timing=False: no timestamps in the file, so a re-run only changes what really changed.
    NotebookClient(nb, kernel_name="python3", timeout=1200, record_timing=False,
                   resources={"metadata": {"path": "docs"}}).execute()
    nbformat.write(nb, path)
    print(f"executed {path} in {time.monotonic() - start:.0f}s")
PY
"$PYTHON" -m mkdocs build --strict
