"""Every docs/*.ipynb runs in a real Jupyter kernel without a cell error, and its committed outputs are a real run's."""
import copy
import importlib.util
import re
from pathlib import Path

import pytest


nbformat = pytest.importorskip("nbformat", reason="the docs tests need the [docs] extra: pip install -e '.[docs]'")
nbclient = pytest.importorskip("nbclient", reason="the docs tests need the [docs] extra: pip install -e '.[docs]'")
pytest.importorskip("ipykernel", reason="the docs tests need the [docs] extra: pip install -e '.[docs]'")

pytestmark = pytest.mark.docs
ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "docs").glob("*.ipynb"))
# The checks of what a reader sees (stderr, warnings, the machine's paths), shared with test_notebook_outputs.py.
_spec = importlib.util.spec_from_file_location("notebook_outputs", Path(__file__).with_name("test_notebook_outputs.py"))
notebook_outputs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(notebook_outputs)
TABLE_HEAD = "<tr><th>epoch</th><th>train</th><th>valid</th><th>Accuracy</th></tr>"


def outputs(nb, mime: str) -> list[str]:
    return [o["data"][mime] for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
            if mime in o.get("data", {})]


def epoch_tables(nb) -> list[str]:
    return [h for h in outputs(nb, "text/html") if TABLE_HEAD in h]


def assert_tutorial_outputs(nb) -> None:
    """The callbacks notebook shows the epoch table as HTML with one row per epoch, and highlighted source."""
    tables = epoch_tables(nb)
    assert tables, "no epoch table (header epoch, train, valid, Accuracy) among the notebook's HTML outputs"
    rows = re.findall(r"<tr><td>(\d+)</td>((?:<td>[0-9.]+</td>){3})</tr>", tables[0])
    assert [r[0] for r in rows] == ["0", "1", "2"], f"the first fit's table should have rows for epochs 0-2: {rows}"
    assert any("highlight" in h and "BasicTrainCB" in h for h in outputs(nb, "text/html")), \
        "view_source_code(BasicTrainCB) did not show highlighted source"


def test_there_are_notebooks():
    assert {p.name for p in NOTEBOOKS} >= {"01_callbacks.ipynb", "02_vision_fashion_mnist.ipynb",
                                           "03_writing_callbacks.ipynb", "04_mixed_precision_checkpoints_resume.ipynb",
                                           "05_distributed.ipynb"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_notebook_was_executed(path):
    """Every code cell ran, in order, in one session, and no output is an error."""
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    counts = [c.execution_count for c in code]
    assert counts == list(range(1, len(code) + 1)), f"{path.name} is not one clean top-to-bottom run: {counts}"
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors, f"{path.name} has error outputs: {[e.ename for e in errors]}"
    if path.name == "01_callbacks.ipynb": assert_tutorial_outputs(nb)
    if path.name == "02_vision_fashion_mnist.ipynb":
        assert len(outputs(nb, "image/png")) >= 6, "the vision notebook's plots are missing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_in_a_kernel(path, docs_env):
    nb = nbformat.read(path, as_version=4)
    fresh = copy.deepcopy(nb)
    for c in fresh.cells:
        if c.cell_type == "code": c.outputs, c.execution_count = [], None
    # Raises CellExecutionError, with the cell and its traceback, on the first cell that fails.
    nbclient.NotebookClient(fresh, kernel_name="python3", timeout=600, record_timing=False,
                            resources={"metadata": {"path": str(path.parent)}}).execute()
    if path.name == "01_callbacks.ipynb": assert_tutorial_outputs(fresh)
    if path.name == "02_vision_fashion_mnist.ipynb": assert len(outputs(fresh, "image/png")) >= 6
    problems = notebook_outputs.output_problems(fresh.cells)
    assert not problems, f"{path.name}, run now from the current code:\n" + "\n".join(problems)
