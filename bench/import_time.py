"""Start-up: AIsaac's own share of `from AIsaac.all import *` beyond importing torch, from `python -X importtime`.

Each repetition is a fresh interpreter running `import torch` then `from AIsaac.all import *`; AIsaac's share is
the cumulative time importtime gives `AIsaac.all` (torch already loaded, so only what AIsaac adds: its modules and
whatever they import that torch had not). Bytecode is cached in a temporary folder, as an installed package has its
.pyc files (`--cold` compiles every module from source each time instead, as with PYTHONDONTWRITEBYTECODE=1).

  python bench/import_time.py            # 7 repetitions (after one that fills the bytecode cache)
  python bench/import_time.py --cold
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)")
HEAVY = ("matplotlib", "tqdm", "accelerate", "datasets", "PIL", "pandas", "torchvision", "transformers", "timm")


def one_run(env: dict) -> tuple[dict[str, tuple[int, int]], list[str]]:
    """{module: (self us, cumulative us)} of the top-level imports after torch, and AIsaac.all's new modules."""
    code = ("import sys, torch; before = set(sys.modules); from AIsaac.all import *; "
            "print(' '.join(sorted({m.split('.')[0] for m in set(sys.modules) - before})))")
    p = subprocess.run([sys.executable, "-X", "importtime", "-c", code], cwd=ROOT, env=env, capture_output=True,
                       text=True, check=True)
    times = {}
    for m in map(LINE.match, p.stderr.splitlines()):
        if m: times[m.group(4)] = (int(m.group(1)), int(m.group(2)))
    return times, p.stdout.split()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--cold", action="store_true", help="no bytecode cache: every module compiled each time")
    a = ap.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cache = tempfile.TemporaryDirectory()
    if a.cold: env["PYTHONDONTWRITEBYTECODE"] = "1"
    else:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = cache.name  # nothing written into the checkout
        one_run(env)  # fills the cache
    runs = [one_run(env) for _ in range(a.reps)]
    share = [r[0]["AIsaac.all"][1] / 1e6 for r in runs]
    torch_s = [r[0]["torch"][1] / 1e6 for r in runs]
    new = runs[0][1]
    print(f"# Python {sys.version.split()[0]}, {a.reps} fresh interpreters, bytecode "
          f"{'compiled each time (cold)' if a.cold else 'cached (as installed)'}; load average {os.getloadavg()[0]:.1f}")
    print("| figure | median s | min s | max s |\n|---|---|---|---|")
    print(f"| `import torch` | {statistics.median(torch_s):.3f} | {min(torch_s):.3f} | {max(torch_s):.3f} |")
    print(f"| AIsaac's share of `from AIsaac.all import *` after torch | {statistics.median(share):.3f} | "
          f"{min(share):.3f} | {max(share):.3f} |")
    i = share.index(sorted(share)[len(share) // 2])
    mods = sorted(((k, v) for k, v in runs[i][0].items() if k.startswith("AIsaac")), key=lambda kv: -kv[1][0])[:8]
    print("\nThe median run's largest AIsaac modules by their own import time (not their imports'): " +
          ", ".join(f"{k} {v[0] / 1e3:.1f} ms" for k, v in mods))
    print(f"\nTop-level packages `from AIsaac.all import *` adds to those torch loaded: {', '.join(new) or 'none'}; "
          f"heavy optional ones among them: {', '.join(m for m in new if m in HEAVY) or 'none'}.")


if __name__ == "__main__":
    main()
