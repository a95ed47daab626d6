"""examples/slurm_train.sh under a stand-in SLURM: `srun` starts one launcher per "node" on this machine and
`scontrol` names 127.0.0.1 as the head node; run again, as a requeued job, it continues from its checkpoint."""
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.launch import free_port

pytestmark = pytest.mark.docs
ROOT = Path(__file__).resolve().parents[2]

FAKE_SRUN = """#!/bin/bash
# srun --ntasks-per-node 1 CMD...: CMD once per node, all at once; a SIGTERM is passed on to them, as srun does
shift 2
pids=()
for i in $(seq 1 "$SLURM_NNODES"); do "$@" & pids+=($!); done
trap 'kill -TERM "${pids[@]}" 2>/dev/null' TERM
for p in "${pids[@]}"; do while kill -0 "$p" 2>/dev/null; do wait "$p"; done; done
"""
# scontrol show hostnames ...: the head node; scontrol requeue ID: recorded in $REQUEUED
FAKE_SCONTROL = """#!/bin/bash
if [ "$1" = requeue ]; then echo "requeue $2" >> "$REQUEUED"; else echo 127.0.0.1; fi
"""


def sbatch(bin_dir, env, *args):
    done = subprocess.run(["bash", str(ROOT / "examples" / "slurm_train.sh"), *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=400, start_new_session=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return [line.split() for line in done.stdout.splitlines() if line[:1].isdigit()]


def slurm_env(docs_env, tmp_path, nodes):
    """The environment of a job of `nodes` nodes under the stand-in srun and scontrol."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("srun", FAKE_SRUN), ("scontrol", FAKE_SCONTROL)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(stat.S_IRWXU)
    return bin_dir, {**docs_env, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "SLURM_NNODES": str(nodes),
                     "SLURM_JOB_NODELIST": "node[1-2]", "SLURM_JOB_ID": "1", "SLURM_JOB_NAME": "aisaac",
                     "GPUS_PER_NODE": "1", "PORT": str(free_port()), "CKPT": str(tmp_path / "ckpt"),
                     "PYTHON": sys.executable, "OMP_NUM_THREADS": "1", "REQUEUED": str(tmp_path / "requeued")}


def test_two_nodes_train_and_a_requeued_job_resumes(docs_env, tmp_path):
    bin_dir, env = slurm_env(docs_env, tmp_path, 2)
    small = ["--n-train", "512", "--n-test", "256", "--bs", "64"]
    first = sbatch(bin_dir, env, *small, "--epochs", "1")
    assert [r[0] for r in first] == ["0"]  # one table (the main process's), one epoch
    assert list((tmp_path / "ckpt").glob("checkpoint-e1-b0*.pt"))  # the name carries the run id
    env["PORT"] = str(free_port())
    again = sbatch(bin_dir, env, *small, "--epochs", "2")  # requeued with more epochs: continues at epoch 1
    assert [r[0] for r in again] == ["0", "1"]  # the table resumes too: the saved epoch 0, then epoch 1


def test_a_signal_before_the_time_limit_checkpoints_and_requeues_the_job(docs_env, tmp_path):
    """SLURM's --signal=B:USR1@120 (or SIGTERM on preemption) reaches the batch script: the training stops after its
    step with a checkpoint on the way out, and the script requeues the job (scontrol requeue) instead of failing."""
    import signal
    import time
    _, env = slurm_env(docs_env, tmp_path, 1)
    ckpt = tmp_path / "ckpt"
    job = subprocess.Popen(["bash", str(ROOT / "examples" / "slurm_train.sh"), "--n-train", "4096", "--n-test", "256",
                            "--bs", "32", "--epochs", "20"], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not list(ckpt.glob("checkpoint-*.pt")):  # training, and saving every 50 batches
            assert job.poll() is None and time.monotonic() < deadline, job.communicate()[1][-3000:]
            time.sleep(0.2)
        first = {p.name for p in ckpt.glob("checkpoint-*.pt")}
        os.kill(job.pid, signal.SIGUSR1)  # to the batch script only, as --signal=B: sends it
        out, err = job.communicate(timeout=180)
    finally:
        if job.poll() is None: os.killpg(job.pid, signal.SIGKILL)
    assert job.returncode == 0, err[-3000:]
    assert (tmp_path / "requeued").read_text() == "requeue 1\n"
    assert "Preempted by SIGTERM" in err and "requeueing job 1" in err, err[-3000:]
    assert {p.name for p in ckpt.glob("checkpoint-*.pt")} - first  # the checkpoint written on the way out
