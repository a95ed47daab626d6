"""CheckpointCB's background writes (AIsaac/runtime/checkpoint_writer.py) and its `every_n_steps`: the loop goes on
while a checkpoint is written, a failed write is raised at the next batch with its class, the fit ends with every
write complete, and checkpoints counted in optimizer steps match `max_steps`' count under gradient accumulation."""
import errno
import threading

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from AIsaac.all import BasicTrainCB, CheckpointCB, DataLoaders, GradAccumCB, Trainer, read_checkpoint, set_seed
from AIsaac.callbacks import checkpoint as checkpoint_module
from AIsaac.runtime.checkpoint_file import checkpoint_files
from AIsaac.runtime.checkpoint_writer import host_copy


def make_trainer(*cbs, seed=0):
    set_seed(seed)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 5, generator=g), torch.randint(0, 3, (64,), generator=g)
    dls = DataLoaders(DataLoader(TensorDataset(x, y), batch_size=4, shuffle=True), None)
    model = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 3))
    return Trainer(dls, nn.CrossEntropyLoss(), torch.optim.Adam, model, [BasicTrainCB(), *cbs])


class Batches:
    """Sets `event` when training batch `at` begins, and counts batches."""
    def __init__(self, at, event): self.at, self.event, self.seen = at, event, 0

    def before_batch(self, trainer):
        self.seen += 1
        if trainer.training and (trainer.epoch, trainer.batch_num) == self.at: self.event.set()


@pytest.mark.parametrize("background", [True, False])
def test_the_loop_goes_on_while_the_checkpoint_is_written_in_the_background(tmp_path, monkeypatch, background):
    # The first write waits until the loop has reached the batch after the save (or 3 s, when the write blocks it).
    later_batch, waited = threading.Event(), []
    real_save = checkpoint_module.save_checkpoint

    def slow_save(state, path, **kw):
        if not waited: waited.append(later_batch.wait(timeout=3))
        return real_save(state, path, **kw)

    monkeypatch.setattr(checkpoint_module, "save_checkpoint", slow_save)
    cb = CheckpointCB(tmp_path, every_n_batches=4, every_epoch=False, keep=None, background=background)
    t = make_trainer(cb, Batches((0, 6), later_batch))
    t.fit(1, lr=1e-3)
    assert waited == [background]  # in the background, the loop reached batch 6 while the write of batch 4 waited
    assert [p.name.split("-")[2] for p in checkpoint_files(tmp_path)] == ["b4", "b8", "b12", "b16"]
    assert cb.last_saved == checkpoint_files(tmp_path)[-1]  # every write complete when fit returns
    assert not cb.writer.busy


def test_a_background_write_copies_the_state_so_training_on_cannot_change_it(tmp_path):
    # The checkpoint at batch 4 holds the weights after step 4, though the model trained on while it was written.
    at4 = []

    class Grab:
        order = 200
        def cleanup_batch(self, trainer):
            if trainer.batch_num == 3: at4.append({k: v.clone() for k, v in trainer.model.state_dict().items()})

    t = make_trainer(CheckpointCB(tmp_path, every_n_batches=4, every_epoch=False, keep=None), Grab())
    t.fit(1)
    saved = read_checkpoint(checkpoint_files(tmp_path)[0])["model"]
    assert all(torch.equal(saved[k], at4[0][k]) for k in saved)
    state = {"w": torch.ones(3), "lists": [[1, 2]], "opt": {"state": {0: {"m": torch.zeros(2)}}}}
    copy = host_copy(state)
    state["w"].add_(1), state["lists"][0].append(3), state["opt"]["state"][0]["m"].add_(5)
    assert torch.equal(copy["w"], torch.ones(3)) and copy["lists"] == [[1, 2]]
    assert torch.equal(copy["opt"]["state"][0]["m"], torch.zeros(2))


def test_a_failed_background_write_is_raised_at_the_next_batch_with_its_class(tmp_path, monkeypatch):
    real_save, calls = checkpoint_module.save_checkpoint, []

    def full_disk(state, path, **kw):
        calls.append(path.name)
        if len(calls) == 2: raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_save(state, path, **kw)

    monkeypatch.setattr(checkpoint_module, "save_checkpoint", full_disk)
    cb = CheckpointCB(tmp_path, every_n_batches=4, every_epoch=False, keep=None)
    t = make_trainer(cb)
    with pytest.raises(OSError) as info: t.fit(1)
    assert info.value.errno == errno.ENOSPC
    # The first checkpoint is whole and stays the newest; the one that failed left nothing behind.
    assert [p.name.split("-")[2] for p in checkpoint_files(tmp_path)] == ["b4"]
    assert read_checkpoint(checkpoint_files(tmp_path)[0])["position"]["batch"] == 4
    assert not list(tmp_path.glob(".*.tmp"))


def test_every_n_steps_counts_optimizer_steps_as_max_steps_does(tmp_path):
    # 16 batches, GradAccumCB(4): 4 optimizer steps; every 2 steps is every 8 batches.
    cb = CheckpointCB(tmp_path, every_n_steps=2, every_epoch=False, keep=None)
    t = make_trainer(cb, GradAccumCB(4))
    t.fit(1)
    files = checkpoint_files(tmp_path)
    assert [(read_checkpoint(f)["position"]["batch"], read_checkpoint(f)["position"]["step"]) for f in files] == \
        [(8, 2), (16, 4)]
    # A resume from the step-2 checkpoint ends where the uninterrupted fit ended.
    resumed = make_trainer(CheckpointCB(tmp_path / "again", every_n_steps=2), GradAccumCB(4), seed=3)
    resumed.fit(1, resume_from=files[0])
    for a, b in zip(resumed.model.parameters(), t.model.parameters()): assert torch.equal(a, b)
    with pytest.raises(ValueError, match="every_n_steps"): CheckpointCB(tmp_path, every_n_steps=0)
