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
    assert rows[0] == ["epoch", "train", "valid", "Accuracy", "train_time", "lr", "valid_time"]
    m = trainer.MetricsCB
    expected = [[str(i), *(repr(v) for v in (lo["train"], lo["valid"], me["Accuracy"]))]
                for i, (lo, me) in enumerate(zip(m.losses_epoch, m.metrics_epoch))]
    assert [r[:4] for r in rows[1:]] == expected
    assert all(r[5] == "0.1" and 0 < float(r[4]) < 5 and 0 < float(r[6]) < 5 for r in rows[1:])  # SGD's lr; seconds
    # The last row's valid loss and accuracy, by hand on the final weights.
    x, y = trainer.dls.valid.dataset.tensors
    with torch.no_grad(): out = trainer.model(x)
    assert abs(float(rows[-1][2]) - nn.functional.cross_entropy(out, y).item()) < 1e-5
    assert float(rows[-1][3]) == (out.argmax(1) == y).float().mean().item()
    assert "Accuracy" in capsys.readouterr().out  # ProgressCB still shows its table


def test_epochs_keep_counting_across_fits_without_duplicate_rows(tiny_trainer, tmp_path):
    path = tmp_path / "h.csv"
    trainer = tiny_trainer(CSVLoggerCB(path))
    trainer.fit(2, lr=0.1)
    trainer.fit(1, lr=0.01)  # the same callback adds to its file
    rows = read(path)
    assert [r[0] for r in rows] == ["epoch", "0", "1", "2"] and [r[5] for r in rows[1:]] == ["0.1", "0.1", "0.01"]
    valid = [repr(lo["valid"]) for lo in trainer.MetricsCB.losses_epoch]
    assert [r[2] for r in rows[1:]] == valid
    trainer.remove_callbacks(trainer.CSVLoggerCB)
    trainer.fit(1, lr=0.1, callbacks=[CSVLoggerCB(path, append=True)])  # a new callback continues the file
    trainer.fit(2, lr=0.1, callbacks=[CSVLoggerCB(path, append=True)])
    assert [r[0] for r in read(path)] == ["epoch", "0", "1", "2", "3", "4", "5"]
    trainer.fit(1, lr=0.1, callbacks=[CSVLoggerCB(path)])  # without append a new callback starts a new file...
    assert [r[0] for r in read(path)] == ["epoch", "0"]
    assert [r[0] for r in read(tmp_path / "h.1.csv")] == ["epoch", "0", "1", "2", "3", "4", "5"]  # ...the old kept


def test_a_new_callback_never_truncates_an_existing_history(tiny_trainer, tmp_path, caplog):
    """Issue 21: a new CSVLoggerCB on an existing file truncated the earlier history without a word."""
    path = tmp_path / "history.csv"
    path.write_text("epoch,train,valid\n0,1.0,1.1\n1,0.9,1.0\n")
    earlier = path.read_text()
    trainer = tiny_trainer(CSVLoggerCB(path))
    with caplog.at_level("INFO", logger="AIsaac"): trainer.fit(1, lr=0.1)
    assert (tmp_path / "history.1.csv").read_text() == earlier
    assert [r[0] for r in read(path)] == ["epoch", "0"]
    message = caplog.text
    assert f"{path} already held a history; kept it as {tmp_path / 'history.1.csv'}" in message
    assert "append=True" in message
    trainer.remove_callbacks(trainer.CSVLoggerCB)
    trainer.fit(1, lr=0.1, callbacks=[CSVLoggerCB(path)])  # again: the next free name, nothing overwritten
    assert (tmp_path / "history.1.csv").read_text() == earlier
    assert [r[0] for r in read(tmp_path / "history.2.csv")] == ["epoch", "0"]
    trainer.fit(1, lr=0.1, callbacks=[CSVLoggerCB(path, append=True)])  # continuing moves nothing
    assert [r[0] for r in read(path)] == ["epoch", "0", "1"] and not (tmp_path / "history.3.csv").exists()


def test_train_only_fit_and_no_metrics_cb(tiny_trainer, tmp_path):
    trainer = tiny_trainer(CSVLoggerCB(tmp_path / "t.csv"))
    trainer.fit(2, lr=0.1, valid=False)
    rows = read(tmp_path / "t.csv")
    assert rows[0] == ["epoch", "train", "train_time", "lr"]
    assert [r[:2] for r in rows[1:]] == [["0", repr(trainer.MetricsCB.losses_epoch[0]["train"])],
                                         ["1", repr(trainer.MetricsCB.losses_epoch[1]["train"])]]
    before = (tmp_path / "t.csv").read_bytes()
    trainer.remove_callbacks(trainer.MetricsCB)
    with pytest.raises(CallbackSetupError, match="CSVLoggerCB reads the epoch log, but no callback fills it.*MetricsCB"):
        trainer.fit(1, lr=0.1)  # nothing would be logged: refused at fit start
    assert (tmp_path / "t.csv").read_bytes() == before
