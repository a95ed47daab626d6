"""Sharded training: a model sharded with PyTorch's `fully_shard` (FSDP2) trains under AccelerateCB on two CPU
processes (gloo) as the unsharded DDP fit does, and its checkpoints (sharded folders, each process writing its part;
see test_accelerate_fsdp_sharded.py) resume bit-exactly. (Accelerate's own FSDP plugin needs GPUs: on CPUs, Accelerate ignores it and runs DDP.)"""
import importlib.util
import json
from pathlib import Path

import pytest
import torch

from AIsaac.all import read_checkpoint
from tests.helpers.launch import run_pair

pytest.importorskip("accelerate")
fsdp = pytest.importorskip("torch.distributed.fsdp")
if not hasattr(fsdp, "fully_shard"): pytest.skip("this PyTorch has no fully_shard (FSDP2)", allow_module_level=True)

WORKER = Path(__file__).parents[1] / "helpers" / "dist_fsdp_worker.py"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("fsdp")
    for r, (code, _, err) in enumerate(run_pair(WORKER, [str(out)], timeout=240)):
        assert code == 0, f"process {r}: {code}\n{err[-3000:]}"
    return out, json.loads((out / "report.json").read_text())


def load(out, name): return torch.load(out / f"{name}.pt", weights_only=True)


def test_the_sharded_model_trains_as_the_ddp_one(run):
    out, report = run
    assert report["fsdp"]["param_type"] == "DTensor" and report["ddp"]["param_type"] == "Parameter"
    for a, b in zip(report["fsdp"]["losses"], report["ddp"]["losses"]): assert a == pytest.approx(b, rel=1e-6)
    assert report["fsdp"]["metrics"] == report["ddp"]["metrics"]
    ddp, sharded = load(out, "ddp"), load(out, "fsdp")
    assert ddp.keys() == sharded.keys()
    for k in ddp: torch.testing.assert_close(sharded[k], ddp[k], rtol=1e-6, atol=1e-7)


def test_sharded_checkpoints_are_sharded_folders_and_resume_bit_exactly(run):
    out, report = run
    assert "process 1 failed" in report["crash_error"]
    folder = next((out / "ckpt").glob("checkpoint-e1-b2-*"))
    assert folder.is_dir() and {"__0_0.distcp", "__1_0.distcp"} <= {p.name for p in folder.iterdir()}
    state = read_checkpoint(folder)  # AIsaac's part: the names and shapes of the weights, not the weights
    full = load(out, "fsdp")
    assert state["model"].keys() == full.keys()
    assert all(state["model"][k].shape == full[k].shape and state["model"][k].is_meta for k in full)
    resumed = load(out, "fsdp_resumed")
    assert all(torch.equal(resumed[k], full[k]) for k in full)
