"""A sharded (FSDP2) fit of two processes killed with SIGKILL in the middle of an epoch, after a mid-epoch checkpoint:
resumed on two processes from the folder, it ends with the full weights of the fit that was never interrupted, bit
for bit."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from AIsaac.all import latest_checkpoint
from tests.helpers.launch import ROOT, base_env, free_port, run_pair

pytest.importorskip("accelerate")
fsdp = pytest.importorskip("torch.distributed.fsdp")
if not hasattr(fsdp, "fully_shard"): pytest.skip("this PyTorch has no fully_shard (FSDP2)", allow_module_level=True)

WORKER = Path(__file__).parents[1] / "helpers" / "dist_fsdp_kill_worker.py"
MARKER_TIMEOUT = 180  # seconds for the killed fit to reach its marker (about 15 on 2 busy cores)


def start_pair(out):
    env = {**base_env(), "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2", "MASTER_PORT": str(free_port())}
    return [subprocess.Popen([sys.executable, str(WORKER), str(out), "kill"], cwd=ROOT, start_new_session=True,
                             env={**env, "RANK": str(r), "LOCAL_RANK": str(r)}, stdout=subprocess.DEVNULL,
                             stderr=open(out / f"kill{r}.err", "w")) for r in (0, 1)]


def kill(procs):
    for p in procs:
        if p.poll() is None: os.killpg(p.pid, signal.SIGKILL)
        p.wait()


def test_a_sharded_fit_killed_mid_epoch_resumes_bit_identical(tmp_path):
    procs = start_pair(tmp_path)
    try:
        deadline = time.monotonic() + MARKER_TIMEOUT
        while not (tmp_path / "marker").exists():
            assert time.monotonic() < deadline and all(p.poll() is None for p in procs), \
                "\n".join((tmp_path / f"kill{r}.err").read_text()[-3000:] for r in (0, 1))
            time.sleep(0.05)
    finally: kill(procs)  # both processes die where they are, as a node failure or an OOM killer leaves them
    assert [p.returncode for p in procs] == [-signal.SIGKILL] * 2
    assert (tmp_path / "marker").read_text() == "6"  # 4 steps of epoch 0 and 2 of epoch 1 done
    newest = latest_checkpoint(tmp_path / "ckpt")
    files = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    assert newest.name.startswith("checkpoint-e1-b2-"), files  # the mid-epoch checkpoint is what resumes
    for r, (code, _, err) in enumerate(run_pair(WORKER, [str(tmp_path), "finish"], timeout=300)):
        assert code == 0, f"process {r}: {code}\n{err[-3000:]}"
    full = torch.load(tmp_path / "full.pt", weights_only=True)
    resumed = torch.load(tmp_path / "resumed.pt", weights_only=True)
    assert full.keys() == resumed.keys() and all(torch.equal(full[k], resumed[k]) for k in full)
