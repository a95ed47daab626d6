"""The checkpoint file: atomic writes, names and the newest file of a folder, safe loading, format and checksum."""
import os
import re

import pytest
import torch

from AIsaac.all import CheckpointCB, CheckpointError, latest_checkpoint, read_checkpoint, save_checkpoint
from AIsaac.runtime.checkpoint_file import (FORMAT, checkpoint_files, checkpoint_name, checksum,
                                            load_checkpoint_file, non_finite, remove_stale_temp_files)
from tests.helpers.small_fit import make_trainer


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


def test_stale_temp_files_are_removed_and_checkpoints_kept(tmp_path):
    (tmp_path / ".checkpoint-e1-b0.pt.x1y2.tmp").write_bytes(b"half")
    kept = save_checkpoint({"x": 1}, tmp_path / checkpoint_name(1, 0))
    remove_stale_temp_files(tmp_path)
    assert os.listdir(tmp_path) == [kept.name]


def test_names_select_the_run_and_order_by_time_then_position(tmp_path):
    assert checkpoint_name(3, 7, "ab12") == "checkpoint-e3-b7-ab12.pt"
    assert checkpoint_name(0, 0) == "checkpoint-e0-b0.pt"
    paths = [tmp_path / checkpoint_name(1, 0, "aa"), tmp_path / checkpoint_name(0, 2, "bb"),
             tmp_path / checkpoint_name(0, 4, "aa")]
    for i, p in enumerate(paths):
        p.write_bytes(b"")
        os.utime(p, ns=(10**9 * (i + 1), 10**9 * (i + 1)))
    (tmp_path / "checkpoint-e1-b0-aa.pt.bak").write_bytes(b"")  # not a checkpoint's name
    assert checkpoint_files(tmp_path) == paths and checkpoint_files(tmp_path, "aa") == [paths[0], paths[2]]
    assert latest_checkpoint(tmp_path) == paths[2]


def test_resume_from_a_folder_takes_the_newest(tmp_path):
    trainer = make_trainer()
    trainer.fit(2, lr=0.1, callbacks=[CheckpointCB(tmp_path, every_n_batches=2, keep=None)])
    files = checkpoint_files(tmp_path)
    assert re.fullmatch(r"checkpoint-e2-b0-[0-9a-f]{8}\.pt", files[-1].name) and len(files) == 6
    assert latest_checkpoint(tmp_path) == files[-1]


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


def test_the_checksum_covers_every_entry_and_a_changed_value_is_refused(tmp_path):
    state = {"format": FORMAT, "model": {"w": torch.ones(3)}, "position": {"epoch": 1, "batch": 0}}
    state["checksum"] = checksum(state)
    assert checksum({**state, "checksum": "ignored"}) == state["checksum"]  # its own entry is left out
    assert checksum({**state, "position": {"epoch": 2, "batch": 0}}) != state["checksum"]
    path = save_checkpoint(state, tmp_path / "c.pt")
    assert torch.equal(load_checkpoint_file(path)["model"]["w"], torch.ones(3))
    state["model"]["w"][1] = 1 + 2 ** -20  # a change in the last bits of one weight
    save_checkpoint(state, path)
    with pytest.raises(CheckpointError, match="corrupt: its contents do not match the checksum"):
        load_checkpoint_file(path)


def test_non_finite_names_the_weights_holding_nan_or_infinity():
    state = {"model": {"a": torch.tensor([1., float("nan")]), "b": torch.ones(2), "c": torch.tensor([float("inf")]),
                       "n": torch.tensor([3])}}
    assert non_finite(state) == ["a", "c"]


def test_a_checkpoint_of_a_newer_format_says_upgrade(tmp_path):
    """Issue 33: a checkpoint written by a newer AIsaac was refused as 'not an AIsaac checkpoint'."""
    newer = FORMAT.rsplit(" ", 1)[0] + f" {int(FORMAT.rsplit(' ', 1)[1]) + 1}"
    state = {"format": newer, "model": {"w": torch.ones(3)}, "position": {"epoch": 1, "batch": 0}}
    state["checksum"] = checksum(state)
    path = save_checkpoint(state, tmp_path / "c.pt")
    with pytest.raises(CheckpointError, match=r"written by a newer version of AIsaac.*pip install -U aisaac"):
        load_checkpoint_file(path)
