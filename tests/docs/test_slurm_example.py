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
# srun --ntasks-per-node 1 CMD...: CMD once per node, all at once
shift 2
for i in $(seq 1 "$SLURM_NNODES"); do "$@" & done
wait
"""
FAKE_SCONTROL = "#!/bin/bash\necho 127.0.0.1\n"


def sbatch(bin_dir, env, *args):
    done = subprocess.run(["bash", str(ROOT / "examples" / "slurm_train.sh"), *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=400, start_new_session=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return [line.split() for line in done.stdout.splitlines() if line[:1].isdigit()]


def test_two_nodes_train_and_a_requeued_job_resumes(docs_env, tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("srun", FAKE_SRUN), ("scontrol", FAKE_SCONTROL)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(stat.S_IRWXU)
    env = {**docs_env, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "SLURM_NNODES": "2",
           "SLURM_JOB_NODELIST": "node[1-2]", "SLURM_JOB_ID": "1", "SLURM_JOB_NAME": "aisaac", "GPUS_PER_NODE": "1",
           "PORT": str(free_port()), "CKPT": str(tmp_path / "ckpt"), "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    small = ["--n-train", "512", "--n-test", "256", "--bs", "64"]
    first = sbatch(bin_dir, env, *small, "--epochs", "1")
    assert [r[0] for r in first] == ["0"]  # one table (the main process's), one epoch
    assert list((tmp_path / "ckpt").glob("checkpoint-e1-b0*.pt"))  # the name carries the run id
    env["PORT"] = str(free_port())
    again = sbatch(bin_dir, env, *small, "--epochs", "2")  # requeued with more epochs: continues at epoch 1
    assert [r[0] for r in again] == ["0", "1"]  # the table resumes too: the saved epoch 0, then epoch 1
