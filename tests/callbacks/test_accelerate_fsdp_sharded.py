"""Sharded checkpoints of a sharded (FSDP2) model on two CPU processes (gloo): each process writes its own part with
`torch.distributed.checkpoint` in the background, no process gathers the full state, and the checkpoint resumes
bit-exactly on two processes and into the plain model on one; `consolidate` makes one plain state dict of it; a
model built on the meta device and materialized shard by shard trains as the same model built whole."""
import json
from pathlib import Path

import pytest
import torch

from AIsaac.all import consolidate
from AIsaac.cli import main
from tests.helpers.launch import run_pair

pytest.importorskip("accelerate")
fsdp = pytest.importorskip("torch.distributed.fsdp")
if not hasattr(fsdp, "fully_shard"): pytest.skip("this PyTorch has no fully_shard (FSDP2)", allow_module_level=True)

WORKER = Path(__file__).parents[1] / "helpers" / "dist_fsdp_sharded_worker.py"


def launch(out, *args, n=2):
    for r, (code, _, err) in enumerate(run_pair(WORKER, [str(out), *args], timeout=240, n=n)):
        assert code == 0, f"process {r}: {code}\n{err[-3000:]}"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("sharded")
    launch(out, "two")
    return out, json.loads((out / "report.json").read_text())


def load(out, name): return torch.load(out / f"{name}.pt", weights_only=True)


def plain_model():
    from tests.helpers.dist_fsdp_sharded_worker import get_model
    return get_model()


def dcp_contents(folder):
    """Everything a DCP folder holds, read in this one process (the test's oracle for what was written)."""
    from torch.distributed.checkpoint import FileSystemReader
    from torch.distributed.checkpoint.default_planner import _EmptyStateDictLoadPlanner
    from torch.distributed.checkpoint.state_dict_loader import _load_state_dict
    sd = {}
    _load_state_dict(sd, storage_reader=FileSystemReader(folder), planner=_EmptyStateDictLoadPlanner(), no_dist=True)
    return sd


def test_every_process_writes_its_part_and_none_gathers_the_full_state(run):
    out, report = run
    assert report["full_gathers"] == []  # get_*state_dict(full_state_dict=True) was never called during the fits
    folders = sorted((out / "full").iterdir())
    assert [p.name.split("-")[1:3] for p in folders] == [["e0", "b2"], ["e0", "b4"], ["e1", "b0"], ["e1", "b2"],
                                                         ["e1", "b4"], ["e2", "b0"], ["e2", "b2"], ["e2", "b4"],
                                                         ["e3", "b0"]]  # no temporary folder left
    for folder in folders:
        assert sorted(p.name for p in folder.iterdir()) == [".metadata", "__0_0.distcp", "__1_0.distcp", "aisaac.pt"]
    meta = torch.load(folders[0] / "aisaac.pt", weights_only=True)
    assert "model" not in meta and len(meta["processes"]) == 2 and meta["position"]["batch"] == 2
    # keep=2 prunes the older folders of the run, also across the resume
    assert [n.split("-")[1:3] for n in report["after_crash"]] == [["e1", "b0"], ["e1", "b2"]]
    assert [n.split("-")[1:3] for n in report["after_resume"]] == [["e2", "b4"], ["e3", "b0"]]


def test_a_sharded_checkpoint_resumes_bit_exactly_on_two_processes(run):
    out, report = run
    assert "process 1 failed" in report["crash_error"]
    full, resumed = load(out, "fsdp"), load(out, "fsdp_resumed")
    assert all(torch.equal(resumed[k], full[k]) for k in full)


def test_consolidate_writes_the_plain_state_dict(run, tmp_path):
    out, _ = run
    final = load(out, "fsdp")
    newest = sorted((out / "full").iterdir())[-1]
    model = plain_model()
    model.load_state_dict(torch.load(consolidate(newest, tmp_path / "w.pt"), weights_only=True))
    assert all(torch.equal(model.state_dict()[k], final[k]) for k in final)
    assert main(["consolidate", str(out / "full"), str(tmp_path / "cli.pt")]) == 0  # the folder: its newest
    cli = torch.load(tmp_path / "cli.pt", weights_only=True)
    assert cli.keys() == final.keys() and all(torch.equal(cli[k], final[k]) for k in final)
    assert main(["consolidate", str(tmp_path / "missing"), str(tmp_path / "x.pt")]) == 2


@pytest.mark.parametrize("mode", ["one", "one_sharded"])
def test_a_sharded_checkpoint_resumes_in_one_process_plain_or_sharded(run, mode):
    out, _ = run
    ckpt = next((out / "full").glob("checkpoint-e2-b0-*"))
    launch(out, mode, str(ckpt), n=1)
    saved, start = dcp_contents(ckpt), torch.load(out / f"{mode}_start.pt", weights_only=True)
    names = list(saved["model"])
    assert all(torch.equal(start["model"][k], saved["model"][k]) for k in names)  # exactly the checkpoint's
    momentum = {names[i]: s["momentum_buffer"] for i, s in start["opt"]["state"].items()}
    assert all(torch.equal(momentum[k], saved["opts"]["opt"]["state"][k]["momentum_buffer"]) for k in names)
    final = torch.load(out / f"{mode}.pt", weights_only=True)
    assert all(torch.isfinite(final[k]).all() and not torch.equal(final[k], saved["model"][k]) for k in names)
    newest = sorted(p.name for p in (out / f"{mode}_ckpt").iterdir())[-1]
    assert newest == next((out / f"{mode}_ckpt").glob("checkpoint-e3-b0-*")).name
    assert newest.endswith(".pt") == (mode == "one")  # a plain model's checkpoints are files, a sharded one's folders


def test_a_meta_device_model_materialized_per_shard_trains_as_the_one_built_whole(run):
    out, report = run
    assert report["meta_param_type"] == "DTensor"
    meta, eager = load(out, "meta"), load(out, "eager")
    assert all(torch.equal(meta[k], eager[k]) for k in eager)


def test_a_failed_background_write_is_raised_at_the_next_save_and_leaves_nothing(tmp_path):
    launch(tmp_path, "failing", n=1)
    report = json.loads((tmp_path / "failing.json").read_text())
    # The first save (after batch 1) failed in the background; the second one (after batch 3) raises it, as itself.
    assert report["error"].startswith("CallbackError[OSError]: CheckpointCB failed at event 'cleanup_batch' "
                                      "(epoch 0, batch 3, training)") and "No space left" in report["error"]
    assert report["cause"] == "OSError" and report["left"] == []
    assert report["sgd_steps"] == 3 * 8  # 3 epochs of 8 batches: DCP's look at SGD's (empty) state counted no step
