"""The committed notebooks' outputs are what a reader should see: no stderr, no warning, no path of the machine that
ran them; and the docs home lists every tutorial. Reads the committed files only (test_notebooks.py runs them)."""
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "docs").glob("*.ipynb"))
# Where a machine's files live (a home, a checkout under /work, a temporary folder, an installed library).
MACHINE_PATH = re.compile(r"/work/|/root/|/home/|/Users/|/tmp/|/private/var/|site-packages|dist-packages|[A-Z]:\\")
# How Python's warnings module prints a warning: "file.py:12: UserWarning: message".
WARNING = re.compile(r"\b[A-Z]\w*Warning: ")


def output_texts(output: dict) -> list[str]:
    """The text a reader sees in one output: a stream, every text/* form of rich data, a traceback."""
    def joined(v): return "".join(v) if isinstance(v, list) else v
    texts = [joined(output.get("text", ""))] + [joined(v) for k, v in output.get("data", {}).items()
                                                if k.startswith("text/")]
    return texts + [joined(output.get("traceback", []))]


def output_problems(cells: list[dict]) -> list[str]:
    """What is wrong with the outputs of these notebook cells, one line each (nothing when they are clean)."""
    problems = []
    for i, cell in enumerate(c for c in cells if c["cell_type"] == "code"):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream" and out.get("name") == "stderr":
                problems.append(f"code cell {i + 1} writes to stderr: {out['text'][:200]!r}")
                continue
            for text in output_texts(out):
                for what, pattern in (("a warning", WARNING), ("a path of the machine", MACHINE_PATH)):
                    if m := pattern.search(text):
                        problems.append(f"code cell {i + 1} shows {what}: {text[max(0, m.start() - 80):m.end() + 80]!r}")
    return problems


def test_the_checks_see_what_they_look_for():
    stderr = {"output_type": "stream", "name": "stderr", "text": "Map: 100%"}
    warned = {"output_type": "stream", "name": "stdout",
              "text": "<ipython-input-3>:5: UserWarning: Tracer and BasicTrainCB all do the step phase 'predict'"}
    path = {"output_type": "execute_result", "data": {"text/plain": "PosixPath('/home/me/ckpt/checkpoint-e0-b4.pt')"}}
    clean = {"output_type": "display_data", "data": {"text/html": "<span>RuntimeWarning</span>, stacklevel=2",
                                                     "text/plain": "epoch 0 train 0.61 /usr/share/datasets"}}
    cells = [{"cell_type": "code", "outputs": [o]} for o in (stderr, warned, path, clean)]
    found = output_problems(cells)
    assert len(found) == 3, found
    assert "cell 1 writes to stderr" in found[0] and "cell 2 shows a warning" in found[1]
    assert "cell 3 shows a path of the machine" in found[2]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_outputs_are_clean(path):
    problems = output_problems(json.loads(path.read_text())["cells"])
    assert not problems, f"{path.name} (re-execute it with docs/build.sh {path.relative_to(ROOT)}):\n" + "\n".join(problems)


def test_the_docs_home_and_the_nav_list_every_tutorial():
    assert len(NOTEBOOKS) >= 7
    home = (ROOT / "docs" / "index.md").read_text()
    nav = (ROOT / "mkdocs.yml").read_text()
    for path in NOTEBOOKS:
        assert f"]({path.name})" in home, f"docs/index.md does not link the tutorial {path.name}"
        assert f": {path.name}\n" in nav, f"mkdocs.yml's nav does not list the tutorial {path.name}"
