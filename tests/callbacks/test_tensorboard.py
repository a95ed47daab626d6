import sys

import pytest
import torch

from AIsaac.all import TensorBoardCB

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402




def scalars(log_dir):
    acc = EventAccumulator(str(log_dir))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_event_files_hold_epoch_and_batch_scalars(tiny_trainer, tmp_path):
    trainer = tiny_trainer(TensorBoardCB(tmp_path))
    trainer.fit(2, lr=0.1)
    got = scalars(tmp_path)
    m = trainer.MetricsCB
    assert sorted(got) == ["loss/train", "loss/train_batch", "loss/valid", "metrics/Accuracy"]
    for tag, key, rows in (("loss/train", "train", m.losses_epoch), ("loss/valid", "valid", m.losses_epoch),
                           ("metrics/Accuracy", "Accuracy", m.metrics_epoch)):
        assert [s for s, _ in got[tag]] == [0, 1]
        torch.testing.assert_close(torch.tensor([v for _, v in got[tag]]), torch.tensor([r[key] for r in rows]))
    batch = [r["loss"] for r in m.losses_batch if r["training"]]
    assert [s for s, _ in got["loss/train_batch"]] == list(range(6))  # 3 batches x 2 epochs
    torch.testing.assert_close(torch.tensor([v for _, v in got["loss/train_batch"]]), torch.tensor(batch))


def test_steps_continue_across_fits(tiny_trainer, tmp_path):
    trainer = tiny_trainer(TensorBoardCB(tmp_path))
    trainer.fit(1, lr=0.1)
    trainer.fit(1, lr=0.1)
    got = scalars(tmp_path)
    assert [s for s, _ in got["loss/valid"]] == [0, 1]
    assert [s for s, _ in got["loss/train_batch"]] == list(range(6))


def test_missing_tensorboard(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(ImportError, match="pip install tensorboard"): TensorBoardCB("runs")
