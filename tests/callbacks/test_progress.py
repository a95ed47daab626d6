"""ProgressCB: the epoch table, and no carriage-return spam when output is not a terminal."""
import re

import IPython.display
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from AIsaac.callbacks import progress
from AIsaac.all import Accuracy, BasicTrainCB, DataLoaders, MetricsCB, ProgressCB, Trainer
from AIsaac.display.tables import text_row


def fit_with_progress(dls, model, capsys, **kw):
    Trainer(dls, nn.CrossEntropyLoss(), torch.optim.SGD, model,
            callbacks=[BasicTrainCB(), ProgressCB(**kw), MetricsCB(Accuracy=Accuracy())]).fit(3)
    return capsys.readouterr()


def test_prints_header_and_a_row_per_epoch(tiny_dls, tiny_model, capsys):
    out = fit_with_progress(tiny_dls, tiny_model, capsys)
    lines = out.out.strip().splitlines()
    assert re.fullmatch(r"epoch\s+train\s+valid\s+Accuracy", lines[0])
    assert len(lines) == 4
    for e, line in enumerate(lines[1:]):
        assert re.fullmatch(rf"{e}\s+\d\.\d{{6}}\s+\d\.\d{{6}}\s+\d\.\d{{6}}", line)


def test_no_carriage_returns_when_not_a_terminal(tiny_dls, tiny_model, capsys):
    out = fit_with_progress(tiny_dls, tiny_model, capsys)
    assert "\r" not in out.out and "\r" not in out.err and out.err == ""


def test_bars_when_forced_go_to_stderr(tiny_dls, tiny_model, capsys):
    out = fit_with_progress(tiny_dls, tiny_model, capsys, bars=True, refresh=0)
    assert "epoch" in out.err and "loss=" in out.err
    assert "\r" not in out.out  # the table stays clean


def test_runs_after_metrics_so_rows_are_final():
    assert ProgressCB.order > MetricsCB.order


def test_row_format():
    assert text_row([0, 0.5, "x"], [5, 8, 3]) == "0      0.500000  x"


def tiny_trainer():
    torch.manual_seed(0)
    ds = TensorDataset(torch.randn(12, 3), torch.randint(0, 2, (12,)))
    dls = DataLoaders(DataLoader(ds, batch_size=4), DataLoader(ds, batch_size=6))
    return Trainer(dls, nn.CrossEntropyLoss(), torch.optim.SGD, nn.Linear(3, 2),
                   [BasicTrainCB(), MetricsCB(Accuracy=Accuracy()), ProgressCB()])


def test_terminal_prints_the_table_as_text(capsys):
    tiny_trainer().fit(2)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["epoch", "train", "valid", "Accuracy"]
    assert [line.split()[0] for line in lines[1:]] == ["0", "1"]


def test_notebook_shows_bars_and_table_as_html(monkeypatch):
    outs = []

    class Handle:
        def __init__(self, bundle): self.i = len(outs); outs.append(bundle)
        def update(self, bundle, raw=False): outs[self.i] = bundle

    monkeypatch.setattr(progress, "in_notebook", lambda: True)
    monkeypatch.setattr(IPython.display, "display", lambda bundle, raw, display_id: Handle(bundle))
    trainer = tiny_trainer()
    trainer.fit(2)
    # Three outputs, each redrawn in place: the epoch bar, the phase bars (blank when done), the table.
    assert len(outs) == 3
    assert outs[0]["text/plain"].startswith("epoch: 2/2 100%") and "<progress value='2' max='2'" in outs[0]["text/html"]
    assert outs[1] == {"text/html": "", "text/plain": ""}
    table = outs[2]["text/html"]
    assert table.startswith("<table") and "<th>train</th><th>valid</th><th>Accuracy</th>" in table
    assert table.count("<tr>") == 3
    losses = trainer.MetricsCB.losses_epoch[-1]
    assert f"<td>{losses['train']:.6f}</td><td>{losses['valid']:.6f}</td>" in table
    assert outs[2]["text/plain"].splitlines()[0].split() == ["epoch", "train", "valid", "Accuracy"]


def test_notebook_without_ipywidgets_gets_no_tqdm_warning(monkeypatch, recwarn):
    import sys
    for name in [m for m in sys.modules if m.startswith(("tqdm.auto", "tqdm.notebook", "tqdm.autonotebook"))]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # not installed
    monkeypatch.setattr(progress, "in_notebook", lambda: True)
    monkeypatch.setattr(IPython.display, "display", lambda bundle, raw, display_id: type("H", (), {"update": lambda *a, **k: None})())
    tiny_trainer().fit(1)
    assert "tqdm.auto" not in sys.modules and "tqdm.notebook" not in sys.modules
    assert not [w for w in recwarn if "IProgress" in str(w.message)]


def test_table_leaves_out_the_records_kept_in_epoch_log(capsys):
    trainer = tiny_trainer()
    trainer.fit(1)
    assert {"lr", "train_time", "valid_time"} <= set(trainer.epoch_log)
    assert capsys.readouterr().out.splitlines()[0].split() == ["epoch", "train", "valid", "Accuracy"]


class FakeClock:
    def __init__(self, step): self.t, self.step = 0., step
    def __call__(self):
        self.t += self.step
        return self.t


def test_heartbeat_when_piped_at_most_every_30_seconds(caplog):
    # 12 rows in batches of 4: 3 training and 2 validation batches per epoch; each clock read "takes" 10 s. The clock
    # is read at the fit's start, at each phase's start and after each batch (t = 10, 20, 30, ...).
    trainer = tiny_trainer()
    trainer.ProgressCB.clock = FakeClock(10.)
    trainer.fit(3)
    beats = [r.getMessage() for r in caplog.records if r.name == "AIsaac"]
    assert all(re.fullmatch(r"epoch [123]/3, (train|valid) batch \d/[23], \d+\.\d batches/s", b) for b in beats)
    assert beats[:3] == ["epoch 1/3, train batch 2/3, 0.1 batches/s",   # t=40: 30 s after the fit started
                         "epoch 1/3, valid batch 1/2, 0.1 batches/s",   # t=70
                         "epoch 2/3, train batch 1/3, 0.1 batches/s"]   # t=100
    assert len(beats) == 6  # two an epoch (70 s of reads), never two less than 30 s apart


def test_no_heartbeat_with_bars_or_when_off(caplog, capsys):
    trainer = tiny_trainer()
    trainer.ProgressCB.clock = FakeClock(100.)
    trainer.ProgressCB.heartbeat = None
    trainer.fit(1)
    trainer.ProgressCB.heartbeat, trainer.ProgressCB.bars = 30., True  # a terminal: the bars show progress
    trainer.fit(1)
    assert not caplog.records and "batches/s" not in capsys.readouterr().err
