"""Trainer.summarize_callbacks (the plan, event by event, as text or HTML) and Trainer.summarize_model (torchinfo's
counts, equal to PyTorch's, for one batch)."""
import sys

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from AIsaac.all import BasicTrainCB, Callback, CoreCBs, DataLoaders, DeviceCB, ProgressCB, Trainer, get_model_conv
from AIsaac.tools.summarize import events_in_run_order, rows_html


# ---- summarize_callbacks ----
class ClaimStepCB(Callback):
    claims = ('step',)
    order = 5

    def step(self, trainer):
        '''Steps in my own way'''


def make(cbs):
    ds = TensorDataset(torch.randn(4, 2), torch.randn(4, 1))
    return Trainer(DataLoaders(DataLoader(ds), DataLoader(ds)), nn.MSELoss(), torch.optim.SGD, nn.Linear(2, 1), cbs)


def test_rows_follow_the_plan_with_groups_expanded(capsys):
    trainer = make([CoreCBs(device='cpu'), ClaimStepCB()])
    rows = trainer.summarize_callbacks()
    expected = [(ev, type(m.__self__).__name__) for ev in events_in_run_order(trainer.events) for m in trainer.plan[ev]]
    assert [(s, c) for s, c, _ in rows] == expected
    assert ('before_batch', 'DeviceCB', 'moves batch to device') in rows
    assert ('step', 'ClaimStepCB', 'Steps in my own way') in rows
    assert ('step', 'BasicTrainCB', '') not in rows  # claimed away: it does not run there
    befores = [c for s, c, _ in rows if s == 'before_fit']
    assert befores == ['DeviceCB', 'BasicTrainCB', 'MetricsCB', 'ActivationStatsCB', 'ProgressCB']  # by order, ties as added
    text = capsys.readouterr().out
    assert text.splitlines()[0].split() == ['Step', 'Callback', 'Doc', 'String']
    assert 'Moves model to device' in text


def test_second_copy_shows_its_trainer_name_and_html(capsys):
    trainer = make([BasicTrainCB()])
    trainer.add_callbacks(ProgressCB())
    trainer.add_callbacks(ProgressCB(), force=True)
    rows = trainer.summarize_callbacks(show=False)
    assert [c for s, c, _ in rows if s == 'before_fit'] == ['BasicTrainCB', 'ProgressCB', 'ProgressCB_2']
    assert capsys.readouterr().out == ''
    page = rows_html([('predict', 'A<B', 'x & y')])
    assert '<th>Doc String</th>' in page and '<td>A&lt;B</td>' in page and 'x &amp; y' in page


def test_empty_trainer():
    assert make([]).summarize_callbacks(show=False) == []
    assert [r[:2] for r in make([DeviceCB('cpu')]).summarize_callbacks(show=False)] == \
        [('before_fit', 'DeviceCB'), ('before_batch', 'DeviceCB')]


def test_run_order():
    order = events_in_run_order(Trainer.events + ('custom',))
    assert sorted(order) == sorted(Trainer.events + ('custom',))
    assert order[:3] == ['before_fit', 'before_epoch', 'before_batch']
    assert order[-5:] == ['after_epoch', 'cleanup_epoch', 'after_fit', 'cleanup_fit', 'custom']


def test_notebook_shows_html(monkeypatch, capsys):
    import IPython.display as IPython_display

    import AIsaac.tools.summarize as sc
    shown = []
    monkeypatch.setattr(sc, "in_notebook", lambda: True)
    monkeypatch.setattr(IPython_display, "display", lambda obj: shown.append(obj))
    rows = make([DeviceCB('cpu')]).summarize_callbacks()
    assert len(shown) == 1 and shown[0].data == rows_html(rows) and capsys.readouterr().out == ''


# ---- summarize_model ----
def make_image_trainer(model):
    ds = TensorDataset(torch.randn(6, 1, 28, 28), torch.randint(0, 10, (6,)))
    return Trainer(DataLoaders(DataLoader(ds, batch_size=3), DataLoader(ds, batch_size=3)), nn.CrossEntropyLoss(),
                   torch.optim.SGD, model)


def test_summary_counts_match_pytorch(capsys):
    pytest.importorskip("torchinfo")
    model = get_model_conv(nfs=[1, 4, 8], norm=nn.BatchNorm2d)
    model.eval()
    stats = make_image_trainer(model).summarize_model()
    assert stats.total_params == sum(p.numel() for p in model.parameters())
    assert stats.trainable_params == sum(p.numel() for p in model.parameters() if p.requires_grad)
    text = capsys.readouterr().out
    assert "Conv2d" in text and "BatchNorm2d" in text
    assert "[3, 1, 28, 28]" in text and "[3, 160]" in text  # one batch of 3 in, the model's output shape out
    assert model(torch.randn(3, 1, 28, 28)).shape == (3, 160)
    assert not model.training


def test_missing_torchinfo(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchinfo", None)
    with pytest.raises(ImportError, match="pip install torchinfo"): make_image_trainer(nn.Linear(1, 1)).summarize_model()


def test_the_rows_do_not_show_again_in_the_ipython_cell_that_printed_the_table(capsys):
    """In a terminal IPython the table is printed once: the rows, the cell's value, are not shown again (a later cell
    shows them as the table)."""
    from IPython.core.interactiveshell import InteractiveShell
    shell = InteractiveShell.instance()
    try:
        shell.user_ns["trainer"] = make([DeviceCB('cpu')])
        shell.run_cell("trainer.summarize_callbacks()", store_history=True)
        first = capsys.readouterr().out
        shell.run_cell("rows = trainer.summarize_callbacks(show=False)", store_history=True)
        shell.run_cell("rows", store_history=True)
        later = capsys.readouterr().out
    finally: InteractiveShell.clear_instance()
    assert first.count("Step") == 1 and "[(" not in first, first
    assert later.count("Step") == 1 and "[(" not in later, later
