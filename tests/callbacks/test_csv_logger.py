import csv
import pytest

import torch
from torch import nn

from AIsaac.all import CallbackSetupError, CSVLoggerCB




def read(path):
    with open(path, newline="") as f: return list(csv.reader(f))


def test_one_row_per_epoch_matching_metrics_and_pytorch(tiny_trainer, tmp_path, capsys):
    path = tmp_path / "logs" / "history.csv"
    trainer = tiny_trainer(CSVLoggerCB(path))
    trainer.fit(3, lr=0.1)
    rows = read(path)
    assert rows[0] == ["epoch", "train", "valid", "Accuracy"]
    m = trainer.MetricsCB
    expected = [[str(i), *(repr(v) for v in (lo["train"], lo["valid"], me["Accuracy"]))]
                for i, (lo, me) in enumerate(zip(m.losses_epoch, m.metrics_epoch))]
    assert rows[1:] == expected
    # The last row's valid loss and accuracy, by hand on the final weights.
    x, y = trainer.dls.valid.dataset.tensors
    with torch.no_grad(): out = trainer.model(x)
    assert abs(float(rows[-1][2]) - nn.functional.cross_entropy(out, y).item()) < 1e-5
    assert float(rows[-1][3]) == (out.argmax(1) == y).float().mean().item()
    assert "Accuracy" in capsys.readouterr().out  # ProgressCB still shows its table


def test_rewrite_or_append(tiny_trainer, tmp_path):
    path = tmp_path / "h.csv"
    trainer = tiny_trainer(CSVLoggerCB(path))
    trainer.fit(2, lr=0.1)
    trainer.fit(1, lr=0.1)
    assert len(read(path)) == 2  # rewritten by the second fit: header and one row
    trainer.remove_callbacks(trainer.CSVLoggerCB)
    trainer.fit(1, lr=0.1, callbacks=[CSVLoggerCB(path, append=True)])
    trainer.fit(2, lr=0.1, callbacks=[CSVLoggerCB(path, append=True)])
    rows = read(path)
    assert [r[0] for r in rows] == ["epoch", "0", "0", "0", "1"]


def test_train_only_fit_and_no_metrics_cb(tiny_trainer, tmp_path):
    trainer = tiny_trainer(CSVLoggerCB(tmp_path / "t.csv"))
    trainer.fit(2, lr=0.1, valid=False)
    assert read(tmp_path / "t.csv") == [["epoch", "train"], ["0", repr(trainer.MetricsCB.losses_epoch[0]["train"])],
                                        ["1", repr(trainer.MetricsCB.losses_epoch[1]["train"])]]
    before = (tmp_path / "t.csv").read_bytes()
    trainer.remove_callbacks(trainer.MetricsCB)
    with pytest.raises(CallbackSetupError, match="CSVLoggerCB reads the epoch log, but no callback fills it.*MetricsCB"):
        trainer.fit(1, lr=0.1)  # nothing would be logged: refused at fit start
    assert (tmp_path / "t.csv").read_bytes() == before
