"""Every ```python block of README.md and docs/*.md runs as pasted: in order on its page, in a fresh interpreter, on
a CPU, in a temporary folder. A block that cannot run on a CPU machine opens with `# not run: <reason>`.

Output shown right under a block (a ``` or ```text fence) is what that block prints: its lines start with the words
the block's printed lines start with (numbers differ from machine to machine, the rows and their labels do not).
"""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.docs
ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
NOT_RUN = "# not run: "
# A python fence, then (after blank lines only) an optional fence of its output.
BLOCK = re.compile(r"^```python\n(?P<code>.*?)^```\n(?:\s*\n)*(?:^```(?:text)?\n(?P<out>.*?)^```\n)?", re.S | re.M)
# Runs a page's blocks one by one in one namespace, each compiled under its page and line, so a traceback names them.
RUNNER = """
import json, sys
blocks = json.load(open(sys.argv[1]))
namespace = {"__name__": "__main__"}
for i, (where, code) in enumerate(blocks):
    print("\\x00block", i, flush=True)
    exec(compile(code, where, "exec"), namespace)
    sys.stdout.flush()
"""


def blocks(page: Path) -> list[tuple[int, str, str | None]]:
    """(line, code, shown output or None) of each python block of `page`."""
    text = page.read_text()
    return [(text[:m.start()].count("\n") + 1, m["code"], m["out"]) for m in BLOCK.finditer(text)]


def first_words(text: str) -> list[str]:
    return [line.split()[0] for line in text.splitlines() if line.strip()]


def test_the_pages_have_blocks_and_few_are_not_run():
    found = {p.name: blocks(p) for p in PAGES}
    n = sum(len(b) for b in found.values())
    not_run = [(page, line) for page, bs in found.items() for line, code, _ in bs if code.startswith(NOT_RUN)]
    assert n >= 20 and len(not_run) <= 4, (n, not_run)
    for page, bs in found.items():
        for line, code, _ in bs:
            assert NOT_RUN not in code or code.startswith(NOT_RUN), f"{page}:{line}: `{NOT_RUN}` must be the first line"


@pytest.mark.parametrize("page", [p for p in PAGES if blocks(p)], ids=lambda p: p.name)
def test_the_page_runs_as_pasted(page, tmp_path, docs_env):
    runnable = [(line, code, out) for line, code, out in blocks(page) if not code.startswith(NOT_RUN)]
    if not runnable: pytest.skip(f"every block of {page.name} is marked `{NOT_RUN}...`")
    (tmp_path / "blocks.json").write_text(json.dumps([(f"{page.name}, block at line {line}", code)
                                                      for line, code, _ in runnable]))
    (tmp_path / "runner.py").write_text(RUNNER)
    env = {**docs_env, "MPLBACKEND": "Agg", "WANDB_MODE": "offline", "WANDB_SILENT": "true",
           "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}", "PYTHONWARNINGS": "ignore"}
    run = subprocess.run([sys.executable, "runner.py", "blocks.json"], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, f"{page.name}:\n{run.stdout[-3000:]}\n{run.stderr[-5000:]}"
    printed = run.stdout.split("\x00block ")[1:]
    assert len(printed) == len(runnable)
    for (line, _, shown), out in zip(runnable, printed):
        out = out.split("\n", 1)[1] if "\n" in out else ""
        if shown is not None:
            assert first_words(shown) == first_words(out), \
                f"{page.name}:{line}: the output shown under the block is not what it prints:\n{out}"
    # Nothing written into the checkout.
    assert not (ROOT / "ckpt").exists() and not (ROOT / "mlruns").exists()
