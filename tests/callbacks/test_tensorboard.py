import sys

import pytest
import torch

from AIsaac.all import OneCycleSchedulerCB, TensorBoardCB

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402




def scalars(log_dir):
    acc = EventAccumulator(str(log_dir))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_event_files_hold_epoch_and_batch_scalars(tiny_trainer, tmp_path):
    trainer = tiny_trainer(TensorBoardCB(tmp_path), OneCycleSchedulerCB())
    trainer.fit(2, lr=0.1)
    got = scalars(tmp_path)
    m = trainer.MetricsCB
    assert sorted(got) == ["loss/train", "loss/train_batch", "loss/valid", "lr/train_batch", "metrics/Accuracy",
                           "records/lr", "records/mom", "records/train_time", "records/valid_time"]
    for tag, key, rows in (("loss/train", "train", m.losses_epoch), ("loss/valid", "valid", m.losses_epoch),
                           ("metrics/Accuracy", "Accuracy", m.metrics_epoch)):
        assert [s for s, _ in got[tag]] == [0, 1]
        torch.testing.assert_close(torch.tensor([v for _, v in got[tag]]), torch.tensor([r[key] for r in rows]))
    batch = [r["loss"] for r in m.losses_batch if r["training"]]
    assert [s for s, _ in got["loss/train_batch"]] == list(range(6))  # 3 batches x 2 epochs
    torch.testing.assert_close(torch.tensor([v for _, v in got["loss/train_batch"]]), torch.tensor(batch))
    # The lr each step used: OneCycleLR's schedule over the 6 steps, replayed by hand.
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    sched, lrs, moms = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=6), [], []
    for _ in range(6):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step(); sched.step()
        moms.append(opt.param_groups[0]["momentum"])
    torch.testing.assert_close(torch.tensor([v for _, v in got["lr/train_batch"]]), torch.tensor(lrs))
    # The epoch records: lr and momentum as the training phase left them (after its last scheduler step).
    assert [v for _, v in got["records/lr"]] == pytest.approx([lrs[3], opt.param_groups[0]["lr"]])
    assert [v for _, v in got["records/mom"]] == pytest.approx([moms[2], moms[5]])
    assert all(0 < v < 5 for _, v in got["records/train_time"] + got["records/valid_time"])


def test_hparams_with_the_fits_final_numbers(tiny_trainer, tmp_path):
    from tensorboard.plugins.hparams import plugin_data_pb2
    trainer = tiny_trainer(TensorBoardCB(tmp_path, hparams={"note": "baseline"}))
    trainer.fit(2, lr=0.1)
    acc = EventAccumulator(str(tmp_path / "hparams_fit0"))
    acc.Reload()
    content = acc.PluginTagToContent("hparams")
    info = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    hp = {k: v.ListFields()[0][1] for k, v in info.hparams.items()}
    assert hp["lr"] == 0.1 and hp["n_epochs"] == 2 and hp["opt_func"] == "SGD" and hp["note"] == "baseline"
    assert hp["model"] == "Linear" and hp["n_params"] == 15 and hp["batch_size"] == 8
    final = {t: v[0][1] for t, v in scalars(tmp_path / "hparams_fit0").items()}
    assert final["hparam/loss/valid"] == pytest.approx(trainer.MetricsCB.losses_epoch[-1]["valid"])


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


def test_a_resumed_fit_writes_to_the_same_folder(tiny_trainer, tmp_path, monkeypatch):
    """Issue 21: with log_dir=None each new callback chose a new runs/<date> folder, so a resumed fit's curves went
    elsewhere; the folder is part of the checkpoint."""
    from AIsaac.all import Callback, CheckpointCB
    monkeypatch.chdir(tmp_path)

    class Stop(Callback):
        def after_batch(self, trainer):
            if trainer.training and (trainer.epoch, trainer.batch_num) == (1, 1): raise KeyboardInterrupt

    first = tiny_trainer(TensorBoardCB(comment="-first"), CheckpointCB(tmp_path / "ckpt", every_n_batches=1))
    with pytest.raises(KeyboardInterrupt): first.fit(3, lr=0.1, callbacks=[Stop()])
    again = tiny_trainer(TensorBoardCB(comment="-again"), CheckpointCB(tmp_path / "ckpt", every_n_batches=1))
    again.fit(3, lr=0.1, resume_from=tmp_path / "ckpt")
    assert again.TensorBoardCB.log_dir == first.TensorBoardCB.log_dir
    assert [p.name for p in (tmp_path / "runs").iterdir()] == [first.TensorBoardCB.log_dir.split("/")[-1]]
    assert sorted(s for s, _ in scalars(first.TensorBoardCB.log_dir)["loss/valid"]) == [0, 1, 2]  # two event files: any order
