"""Sharded checkpoint folders in one process: which folders count as checkpoints, `consolidate` of a plain
checkpoint file, and the refusal of trainer.save/export for a sharded model (the multi-process writes, resumes and
consolidation run in tests/callbacks/test_accelerate_fsdp_sharded.py)."""
import pytest
import torch
from torch import nn

from torch.utils.data import DataLoader, TensorDataset

from AIsaac.all import BasicTrainCB, DataLoaders, Trainer, consolidate, read_checkpoint
from AIsaac.callbacks.checkpoint import CheckpointCB
from AIsaac.exceptions import CheckpointError
from AIsaac.runtime.checkpoint_file import checkpoint_files
from AIsaac.runtime.sharded_checkpoint import checkpoint_dir_name, refuse_sharded


def test_only_complete_sharded_folders_are_checkpoints(tmp_path):
    done = tmp_path / checkpoint_dir_name(1, 4, "ab12")
    done.mkdir()
    (done / ".metadata").write_bytes(b"")
    (done / "aisaac.pt").write_bytes(b"")
    (tmp_path / f".{done.name}.0f0f.tmp").mkdir()  # a write in progress, or killed midway
    (tmp_path / checkpoint_dir_name(2, 0, "ab12")).mkdir()  # renamed only when complete: not a checkpoint anyway
    assert done.name == "checkpoint-e1-b4-ab12"
    assert checkpoint_files(tmp_path) == [done] and checkpoint_files(tmp_path, "ab12") == [done]
    assert checkpoint_files(tmp_path, "cd34") == []


def tiny_trainer(*cbs):
    torch.manual_seed(0)
    x, y = torch.randn(24, 4), torch.randint(0, 3, (24,))
    return Trainer(DataLoaders(DataLoader(TensorDataset(x, y), batch_size=8), None), nn.CrossEntropyLoss(),
                   torch.optim.SGD, nn.Linear(4, 3), [BasicTrainCB(), *cbs])


def test_consolidate_of_a_checkpoint_file_writes_its_weights(tmp_path):
    trainer = tiny_trainer(CheckpointCB(tmp_path / "ckpt"))
    trainer.fit(1)
    out = consolidate(tmp_path / "ckpt", tmp_path / "w.pt")  # a folder of files: its newest
    weights = torch.load(out, weights_only=True)
    assert weights.keys() == trainer.model.state_dict().keys()
    assert all(torch.equal(weights[k], v) for k, v in read_checkpoint(tmp_path / "ckpt")["model"].items())
    with pytest.raises(FileNotFoundError, match="No checkpoint at"): consolidate(tmp_path / "none", tmp_path / "x.pt")


def test_save_and_export_of_a_sharded_model_say_what_to_do(monkeypatch, tmp_path):
    import AIsaac.runtime.distributed as distributed
    refuse_sharded(nn.Linear(2, 2), "trainer.save")  # a plain model: nothing to say
    monkeypatch.setattr(distributed, "is_sharded", lambda m: True)
    trainer = tiny_trainer()
    with pytest.raises(CheckpointError, match=r"trainer.save of a model sharded .*aisaac consolidate CKPT OUT"):
        trainer.save(tmp_path / "m.pt")
    with pytest.raises(CheckpointError, match=r"trainer.export of a model sharded .* and export that"):
        trainer.export(tmp_path / "m.pt2", torch.randn(2, 4))
    assert not list(tmp_path.iterdir())
