"""ProgressCB: the epoch table, and no carriage-return spam when output is not a terminal."""
import re

import torch
from torch import nn

from AIsaac.all import Accuracy, BasicTrainCB, MetricsCB, ProgressCB, Trainer
from AIsaac.callbacks.progress import format_table_row


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
    assert format_table_row([0, 0.5, "x"], [5, 8, 3]) == "0      0.500000  x"
