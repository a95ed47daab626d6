import re
import os

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from AIsaac.all import (BasicTrainCB, Callback, CheckpointCB, CheckpointError, DataLoaders, Trainer, latest_checkpoint,
                        read_checkpoint, save_checkpoint)
from AIsaac.runtime.checkpoint import checkpoint_files


class ScaleCB(Callback):
    """A callback with state: a number it multiplies by."""

    def __init__(self, scale=1.0): self.scale = scale
    def state_dict(self): return {"scale": self.scale}
    def load_state_dict(self, state): self.scale = state["scale"]


def make_trainer(model=None, callbacks=(), n=16):
    torch.manual_seed(0)
    ds = TensorDataset(torch.randn(n, 4), torch.randint(0, 2, (n,)))
    dls = DataLoaders(DataLoader(ds, batch_size=4, shuffle=True), DataLoader(ds, batch_size=8))
    model = model if model is not None else nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 2))
    return Trainer(dls, nn.CrossEntropyLoss(), torch.optim.SGD, model, [BasicTrainCB(), *callbacks])


@pytest.fixture
def saved(tmp_path):
    """A folder holding the checkpoint of a one-epoch fit (with a ScaleCB whose scale was 3)."""
    make_trainer(callbacks=[ScaleCB(3.0)]).fit(1, lr=0.1, callbacks=[CheckpointCB(tmp_path)])
    return tmp_path


def test_save_is_atomic_a_failed_write_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint-e0-b1.pt"
    save_checkpoint({"x": torch.arange(3)}, path)
    real_save = torch.save

    def crash_midway(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 the first bytes of a zip")  # a partial write, then the crash
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash_midway)
    with pytest.raises(OSError, match="disk full"): save_checkpoint({"x": torch.arange(5)}, path)
    monkeypatch.setattr(torch, "save", real_save)
    assert torch.equal(torch.load(path, weights_only=True)["x"], torch.arange(3))
    assert os.listdir(tmp_path) == [path.name]  # the temporary file is gone too


def test_save_fsyncs_before_renaming(tmp_path, monkeypatch):
    calls = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (calls.append("replace"), real_replace(a, b))[1])
    save_checkpoint({"x": 1}, tmp_path / "c.pt")
    assert calls[:2] == ["fsync", "replace"]


def test_resume_from_a_folder_takes_the_newest(tmp_path):
    trainer = make_trainer()
    trainer.fit(2, lr=0.1, callbacks=[CheckpointCB(tmp_path, every_n_batches=2, keep=None)])
    files = checkpoint_files(tmp_path)
    assert re.fullmatch(r"checkpoint-e2-b0-[0-9a-f]{8}\.pt", files[-1].name) and len(files) == 6
    assert latest_checkpoint(tmp_path) == files[-1]


def test_empty_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="No checkpoint in"): make_trainer().fit(1, resume_from=tmp_path)


def test_model_of_another_shape_is_refused_naming_the_keys(saved):
    wider = nn.Sequential(nn.Linear(4, 7), nn.ReLU(), nn.Linear(7, 2))
    trainer = make_trainer(model=wider, callbacks=[ScaleCB()])
    before = [p.detach().clone() for p in wider.parameters()]
    with pytest.raises(CheckpointError, match=r"shape mismatch: 0\.weight \(saved \(5, 4\), model \(7, 4\)\)"):
        trainer.fit(1, resume_from=saved)
    for a, b in zip(before, wider.parameters()): assert torch.equal(a, b)  # refused before anything changed
    assert trainer.opt is None


def test_model_with_other_layers_is_refused_naming_the_keys(saved):
    deeper = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 2), nn.Linear(2, 2))
    with pytest.raises(CheckpointError, match="missing keys: 3.weight, 3.bias"):
        make_trainer(model=deeper, callbacks=[ScaleCB()]).fit(1, resume_from=saved)
    other = nn.Sequential(nn.Linear(4, 2))
    with pytest.raises(CheckpointError, match="unexpected keys: 2.weight, 2.bias"):
        make_trainer(model=other, callbacks=[ScaleCB()]).fit(1, resume_from=saved)


def test_callback_state_is_restored_by_name(saved):
    trainer = make_trainer(callbacks=[ScaleCB(1.0)])
    trainer.fit(2, lr=0.1, resume_from=saved, allow_changes=("n_epochs",))  # one more epoch than saved: allowed
    assert trainer.ScaleCB.scale == 3.0


def test_callbacks_with_state_must_match(saved):
    with pytest.raises(CheckpointError, match="callbacks: missing ScaleCB.*allow_changes=\\('callbacks',\\)"):
        make_trainer().fit(1, lr=0.1, resume_from=saved)

    class OtherCB(ScaleCB): pass

    with pytest.raises(CheckpointError, match="callbacks: new OtherCB"):
        make_trainer(callbacks=[ScaleCB(), OtherCB()]).fit(1, lr=0.1, resume_from=saved)
    with pytest.raises(CheckpointError, match="does not hold: OtherCB"):  # a fit-only callback with state
        make_trainer(callbacks=[ScaleCB()]).fit(1, lr=0.1, resume_from=saved, callbacks=[OtherCB()])


def test_loading_never_runs_code_from_the_file(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": "AIsaac checkpoint 1", "payload": Exploit()}, path)
    Exploit.ran = False
    with pytest.raises(CheckpointError, match="not loaded"): read_checkpoint(path)
    assert not Exploit.ran


class Exploit:
    ran = False

    def __reduce__(self): return (Exploit._run, ())

    @staticmethod
    def _run():
        Exploit.ran = True
        return "ran"


def test_not_a_checkpoint(tmp_path):
    torch.save({"weight": torch.zeros(2)}, tmp_path / "weights.pt")
    with pytest.raises(CheckpointError, match="not an AIsaac checkpoint"): read_checkpoint(tmp_path / "weights.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a zip file")
    with pytest.raises(CheckpointError, match="truncated or corrupt"): read_checkpoint(tmp_path / "junk.pt")


def test_optimizer_of_another_kind_is_a_clear_error(saved):
    trainer = make_trainer(callbacks=[ScaleCB()])
    trainer.opt_func = lambda params, lr: torch.optim.SGD([{"params": list(params)[:2]}, {"params": []}], lr=lr)
    with pytest.raises(CheckpointError, match="number of param groups: saved 1, now 2"):
        trainer.fit(1, lr=0.1, resume_from=saved)
    with pytest.raises(CheckpointError, match="optimizer state does not fit"):
        trainer.fit(1, lr=0.1, resume_from=saved, allow_changes=("opt",))


def test_train_loader_shorter_than_the_checkpoint_position(tmp_path):
    trainer = make_trainer(n=16)
    trainer.fit(1, lr=0.1, callbacks=[CheckpointCB(tmp_path, every_n_batches=3, every_epoch=False)])
    short = make_trainer(n=8)
    with pytest.raises(CheckpointError, match="batches per epoch: saved 4, now 2"):
        short.fit(1, lr=0.1, resume_from=tmp_path)
    with pytest.raises(CheckpointError, match="saved 3 batches into an epoch, but the train loader now has only 2"):
        short.fit(1, lr=0.1, resume_from=tmp_path, allow_changes=("batch_size",))
