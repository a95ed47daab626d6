import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from AIsaac.all import (BasicTrainCB, Callback, CancelFitException, CheckpointCB, DataLoaders, MetricsCB, Trainer, latest_checkpoint,
                        set_seed)
from tests.helpers.resume_run import NoisyData, OneCycleCB

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).parents[1] / "helpers" / "resume_run.py"


def make_trainer(seed=0, num_workers=0, callbacks=()):
    set_seed(seed)
    dls = DataLoaders(DataLoader(NoisyData(24), batch_size=4, shuffle=True, num_workers=num_workers),
                      DataLoader(NoisyData(8), batch_size=4))
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Dropout(0.3), nn.Linear(8, 3))
    return Trainer(dls, nn.CrossEntropyLoss(), torch.optim.Adam, model,
                   [BasicTrainCB(), MetricsCB(), OneCycleCB(), *callbacks])


def plain(name):
    """A checkpoint's file name without its run id: checkpoint-e1-b4-<run>.pt -> checkpoint-e1-b4.pt."""
    return re.sub(r"-[0-9a-f]{8}\.pt$", ".pt", name)


def weights(trainer): return [p.detach().clone() for p in trainer.model.state_dict().values()]


def assert_same_weights(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b): assert torch.equal(x, y)


class RaiseAt(Callback):
    """Raises `exc` at `event` of training batch `at` (epoch, batch)."""

    def __init__(self, event, at, exc=KeyboardInterrupt):
        self.at, self.exc = at, exc
        setattr(self, event, self._maybe_raise)

    def _maybe_raise(self, trainer):
        if trainer.training and (trainer.epoch, trainer.batch_num) == self.at: raise self.exc()


class StopAfterBatch(Callback):
    def __init__(self, at): self.at = at

    def after_batch(self, trainer):
        if trainer.training and (trainer.epoch, trainer.batch_num) == self.at: raise KeyboardInterrupt


class StopInStep(Callback):
    """A second `step` beside BasicTrainCB's: interrupts right after the optimizer stepped, before zero_grad."""

    observes = ("step",)

    def __init__(self, at): self.at = at

    def step(self, trainer):
        if (trainer.epoch, trainer.batch_num) == self.at: raise KeyboardInterrupt


@pytest.fixture(scope="module")
def uninterrupted():
    trainer = make_trainer()
    trainer.fit(3, lr=1e-2)
    return weights(trainer)


def test_kill_and_resume_in_subprocesses_is_bit_identical(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    run = lambda *args: subprocess.Popen([sys.executable, str(SCRIPT), *map(str, args)], env=env, cwd=tmp_path)
    ckpt, marker = tmp_path / "ckpt", tmp_path / "marker"
    full, crash = run("full", tmp_path / "full.pt"), run("crash", ckpt, marker)
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert crash.poll() is None, "the training process died before reaching the kill point"
            assert time.monotonic() < deadline, "the training process never reached the kill point"
            time.sleep(0.05)
        crash.send_signal(signal.SIGKILL)  # mid-epoch: epoch 1, batch 6; the newest checkpoint is 4 batches in
        assert crash.wait(30) == -signal.SIGKILL
    finally:
        if crash.poll() is None: crash.kill()
    assert plain(latest_checkpoint(ckpt).name) == "checkpoint-e1-b4.pt"
    assert full.wait(120) == 0
    resume = run("resume", ckpt, tmp_path / "resumed.pt")
    assert resume.wait(120) == 0
    a = torch.load(tmp_path / "full.pt", weights_only=True)
    b = torch.load(tmp_path / "resumed.pt", weights_only=True)
    assert a.keys() == b.keys()
    for k in a: assert torch.equal(a[k], b[k]), k


def test_resume_mid_epoch_matches_uninterrupted(tmp_path, uninterrupted):
    trainer = make_trainer()
    with pytest.raises(KeyboardInterrupt):
        trainer.fit(3, lr=1e-2, callbacks=[CheckpointCB(tmp_path, every_n_batches=2), StopAfterBatch((1, 4))])
    # Stopped in another callback's after_batch: the callbacks after it have not recorded batch 4 (the scheduler,
    # the metrics), so the trainer says the batch is not finished (in_step): the newest is the periodic checkpoint.
    assert plain(latest_checkpoint(tmp_path).name) == "checkpoint-e1-b4.pt"
    resumed = make_trainer(seed=99)
    resumed.fit(3, lr=1e-2, resume_from=tmp_path)
    assert_same_weights(weights(resumed), uninterrupted)
    assert resumed.OneCycleCB.sched.last_epoch == 3 * 6  # the scheduler went on from where it was, not from 0


def test_a_cancel_from_another_callbacks_after_batch_writes_nothing_half_recorded(tmp_path, uninterrupted):
    """A cancel in another callback's after_batch: the step is done but the callbacks after it have not recorded the
    batch, so the trainer says it is not finished (`trainer.in_step`) and nothing is written on the way out (the
    newest resumes exactly); a cancel before the next batch (the previous one finished) is written there."""
    trainer = make_trainer()
    trainer.fit(3, lr=1e-2, callbacks=[CheckpointCB(tmp_path / "a"), RaiseAt("after_batch", (1, 2), CancelFitException)])
    assert plain(latest_checkpoint(tmp_path / "a").name) == "checkpoint-e1-b0.pt"
    trainer = make_trainer()
    trainer.fit(3, lr=1e-2, callbacks=[CheckpointCB(tmp_path / "b"), RaiseAt("before_batch", (1, 3), CancelFitException)])
    assert plain(latest_checkpoint(tmp_path / "b").name) == "checkpoint-e1-b3.pt"
    resumed = make_trainer(seed=5)
    resumed.fit(3, lr=1e-2, resume_from=tmp_path / "a", allow_changes=("callbacks",))
    assert_same_weights(weights(resumed), uninterrupted)


def test_resume_from_epoch_end_matches_uninterrupted(tmp_path, uninterrupted):
    trainer = make_trainer()
    with pytest.raises(KeyboardInterrupt):
        trainer.fit(3, lr=1e-2, callbacks=[CheckpointCB(tmp_path), RaiseAt("before_batch", (2, 0))])
    assert plain(latest_checkpoint(tmp_path).name) == "checkpoint-e2-b0.pt"
    resumed = make_trainer(seed=7)
    resumed.fit(3, lr=1e-2, resume_from=latest_checkpoint(tmp_path))
    assert_same_weights(weights(resumed), uninterrupted)


def test_resume_with_worker_processes_matches(tmp_path):
    # Skipped batches are loaded (not trained on), so workers are re-seeded and fed as in the interrupted run.
    reference = make_trainer(num_workers=1)
    reference.fit(2, lr=1e-2)
    trainer = make_trainer(num_workers=1)
    with pytest.raises(KeyboardInterrupt):
        trainer.fit(2, lr=1e-2, callbacks=[CheckpointCB(tmp_path, every_n_batches=3), StopAfterBatch((1, 4))])
    resumed = make_trainer(seed=5, num_workers=1)
    resumed.fit(2, lr=1e-2, resume_from=tmp_path)
    assert_same_weights(weights(resumed), weights(reference))


def test_saves_every_n_batches_and_every_epoch_and_keeps_the_newest(tmp_path):
    written = []

    class Spy(Callback):
        order = 200  # after CheckpointCB

        def after_batch(self, trainer):
            trainer.CheckpointCB.writer.wait()  # the write in the background complete
            written.append(sorted(plain(p.name) for p in tmp_path.iterdir()))

    trainer = make_trainer()
    trainer.fit(2, lr=1e-2, callbacks=[CheckpointCB(tmp_path, every_n_batches=4, keep=2), Spy()])
    assert ["checkpoint-e0-b4.pt"] in written  # six batches an epoch: a checkpoint after the fourth
    assert sorted(plain(p.name) for p in tmp_path.iterdir()) == ["checkpoint-e1-b4.pt", "checkpoint-e2-b0.pt"]


def test_checkpoint_holds_everything_and_loads_with_weights_only(tmp_path):
    trainer = make_trainer()
    trainer.fit(1, lr=1e-2, callbacks=[CheckpointCB(tmp_path, every_epoch=True)])
    state = torch.load(next(tmp_path.glob("checkpoint-e1-b0-*.pt")), weights_only=True)
    assert state["position"]["epoch"] == 1 and state["position"]["batch"] == 0
    for k, v in trainer.model.state_dict().items(): assert torch.equal(state["model"][k], v)
    assert state["opts"]["opt"]["state"][0]["step"] == 6
    assert state["callbacks"]["OneCycleCB"]["last_epoch"] == 6
    assert set(state["rng"]) >= {"python", "numpy", "torch"}


def test_interrupt_saves_on_the_way_out_and_the_fit_can_resume(tmp_path, uninterrupted):
    trainer = make_trainer()
    with pytest.raises(KeyboardInterrupt):
        trainer.fit(3, lr=1e-2, callbacks=[CheckpointCB(tmp_path, every_epoch=False), RaiseAt("before_batch", (1, 5))])
    assert [plain(p.name) for p in tmp_path.iterdir()] == ["checkpoint-e1-b5.pt"]  # five batches of epoch 1 were done
    assert "CheckpointCB" not in trainer.named_callbacks and "RaiseAt" not in trainer.named_callbacks
    resumed = make_trainer(seed=3)
    resumed.fit(3, lr=1e-2, resume_from=tmp_path)
    assert resumed.OneCycleCB.sched.last_epoch == 18
    assert all(torch.isfinite(w).all() for w in weights(resumed))


def test_interrupt_inside_a_training_step_writes_no_checkpoint(tmp_path):
    trainer = make_trainer()
    with pytest.raises(KeyboardInterrupt):
        trainer.fit(3, lr=1e-2, callbacks=[CheckpointCB(tmp_path, every_n_batches=2), StopInStep((0, 3))])
    # The weights are one step past batch 2, but not through batch 3: not a position to continue from.
    assert [plain(p.name) for p in tmp_path.iterdir()] == ["checkpoint-e0-b2.pt"]


def test_cancelled_fit_is_saved_too(tmp_path):
    from AIsaac.all import CancelFitException
    trainer = make_trainer()
    trainer.fit(3, lr=1e-2, callbacks=[CheckpointCB(tmp_path, every_epoch=False),
                                       RaiseAt("before_batch", (0, 2), CancelFitException)])
    assert [plain(p.name) for p in tmp_path.iterdir()] == ["checkpoint-e0-b2.pt"]


def test_a_resumed_run_removes_the_temporary_file_its_killed_save_left(tmp_path):
    t = make_trainer()
    with pytest.raises(KeyboardInterrupt):  # killed mid-epoch; the checkpoint on the way out is written
        t.fit(2, lr=1e-2, callbacks=[CheckpointCB(tmp_path, every_n_batches=2), StopAfterBatch((0, 3))])
    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout)  # the pid of a process that has ended, as a killed run's is
    stale = tmp_path / f".checkpoint-e1-b2-{t.run_id}.pt.{dead}-abc123.tmp"
    stale.write_bytes(b"half a checkpoint")
    make_trainer().fit(2, lr=1e-2, callbacks=[CheckpointCB(tmp_path)], resume_from=tmp_path)
    assert not stale.exists()


@pytest.mark.parametrize("kw", [dict(every_n_batches=0), dict(every_n_batches=1.5), dict(keep=0)])
def test_bad_arguments(tmp_path, kw):
    with pytest.raises(ValueError, match="whole number"): CheckpointCB(tmp_path, **kw)


# ---- runs sharing a folder; a folder that cannot be written ----
def test_two_runs_in_one_folder_never_touch_each_others_files(tmp_path, monkeypatch, caplog):
    """Run B starts (and finishes) in the middle of run A's checkpoint write into the same folder: A's save goes on,
    each run keeps its own newest files, and a resume from the folder says which run it continues."""
    import AIsaac.runtime.checkpoint_file as cf
    real_save, started = torch.save, []

    def save_then_start_run_b(obj, f, *args, **kwargs):
        if not started:  # A's first save is in flight (its temporary file open): B's whole fit runs now
            started.append(1)
            make_trainer(seed=1, callbacks=[CheckpointCB(tmp_path, keep=1)]).fit(1)
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(cf.torch, "save", save_then_start_run_b)
    a = make_trainer(seed=0, callbacks=[CheckpointCB(tmp_path, every_n_batches=3, keep=2)])
    a.fit(2)  # before the fix: B's before_fit deleted A's temporary file and A died in os.replace
    monkeypatch.setattr(cf.torch, "save", real_save)
    files = sorted(p.name for p in tmp_path.iterdir())
    run_a, run_b = a.run_id, {cf.run_of(p) for p in tmp_path.iterdir()} - {a.run_id}
    assert len(run_b) == 1 and not any(n.endswith(".tmp") for n in files)
    assert [plain(n) for n in files if a.run_id in n] == ["checkpoint-e1-b6.pt", "checkpoint-e2-b0.pt"]  # keep=2
    assert [plain(n) for n in files if a.run_id not in n] == ["checkpoint-e1-b0.pt"]  # B's keep=1, untouched by A
    with caplog.at_level("INFO", logger="AIsaac"):
        assert latest_checkpoint(tmp_path).name == f"checkpoint-e2-b0-{run_a}.pt"
    said = caplog.text
    assert f"holds checkpoints of 2 runs" in said and f"resuming run {run_a}" in said and "pass its checkpoint" in said


def test_a_stale_temporary_file_is_removed_only_for_its_own_run_and_dead_writer(tmp_path):
    from AIsaac.runtime.checkpoint_file import remove_stale_temp_files
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)  # a process that has ended
    mine_dead = tmp_path / f".checkpoint-e0-b4-aaaaaaaa.pt.{dead_pid}-x1.tmp"
    mine_alive = tmp_path / f".checkpoint-e0-b8-aaaaaaaa.pt.{os.getppid()}-x2.tmp"  # a writer still running
    other_run = tmp_path / f".checkpoint-e0-b4-bbbbbbbb.pt.{dead_pid}-x3.tmp"
    for p in (mine_dead, mine_alive, other_run): p.write_bytes(b"half")
    assert remove_stale_temp_files(tmp_path, "aaaaaaaa") == [mine_dead]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([mine_alive.name, other_run.name])


def test_a_folder_that_cannot_be_written_fails_before_any_training():
    t = make_trainer(callbacks=[CheckpointCB("/proc/x/ck")])
    before = weights(t)
    with pytest.raises(FileNotFoundError, match=r"CheckpointCB cannot write checkpoints into /proc/x/ck.*Give it a "
                                                r"folder this process can create and write to") as info:
        t.fit(1)
    assert "before_fit" in str(info.value)
    assert_same_weights(before, weights(t))  # refused at the start: no batch trained
