"""In a notebook every display method shows its output once: a plot as one image (not the inline backend's image and
then the cell value's), the callbacks' table as one table (not a table and then its list of rows)."""
import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="the docs tests need the [docs] extra: pip install -e '.[docs]'")
nbclient = pytest.importorskip("nbclient", reason="the docs tests need the [docs] extra: pip install -e '.[docs]'")
pytest.importorskip("ipykernel", reason="the docs tests need the [docs] extra: pip install -e '.[docs]'")

pytestmark = pytest.mark.docs
ROOT = Path(__file__).resolve().parents[2]

SETUP = """\
import torch
from torch import nn
from AIsaac.all import *
set_seed(0)
x, y = torch.randn(64, 1, 8, 8), torch.randint(0, 2, (64,))
dls = DataLoaders.from_tensors((x, y), (x, y), batch_size=16)
model = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 2))
trainer = Trainer(dls, nn.CrossEntropyLoss(), torch.optim.SGD, model,
                  [BasicTrainCB(), MetricsCB(Accuracy=Accuracy()), ActivationStatsCB()])
trainer.fit(2)"""
# Each cell, and the one output it must show: a plot or a table.
CELLS = [("plot_losses(trainer)", "image/png"), ("trainer.MetricsCB.plot()", "image/png"),
         ("trainer.ActivationStatsCB.color_dim()", "image/png"), ("trainer.ActivationStatsCB.dead_chart()", "image/png"),
         ("trainer.ActivationStatsCB.plot_stats()", "image/png"), ("dls.show_batch(n=4)", "image/png"),
         ("trainer.show_image_batch(max_n=4)", "image/png"), ("show_images([x[0], x[1]])", "image/png"),
         ("trainer.summarize_callbacks()", "text/html"),
         ("fig = plot_losses(trainer)", "image/png"),  # drawn, not the cell's value: the inline backend shows it
         ("fig", "image/png"),  # a later cell asks for it again: shown again
         ("rows = trainer.summarize_callbacks()", "text/html"), ("rows", "text/html"),
         ("finder = LRFinderCB(num_it=8)\ntrainer.fit(1, lr=1e-4, callbacks=[finder])\nfinder.plot()", "image/png")]


def test_each_display_method_shows_once_in_a_notebook(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel draws inline, as in Jupyter
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(SETUP)]
                                  + [nbformat.v4.new_code_cell(code) for code, _ in CELLS])
    nbclient.NotebookClient(nb, kernel_name="python3", timeout=300).execute()
    for cell, (code, mime) in zip(nb.cells[1:], CELLS):
        shown = [o for o in cell.outputs if o.output_type in ("display_data", "execute_result")]
        assert [mime in o.get("data", {}) for o in shown] == [True], \
            f"{code}: {[(o.output_type, sorted(o.get('data', {}))) for o in cell.outputs]}"
        assert not [o for o in cell.outputs if o.output_type == "stream"], f"{code} printed: {cell.outputs}"
