"""The scripts in examples/ run from the command line on a small subset of Fashion-MNIST."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.docs
ROOT = Path(__file__).resolve().parents[2]
SMALL = ["--n-train", "512", "--n-test", "256"]


def run(script: str, *args: str, env: dict) -> str:
    done = subprocess.run([sys.executable, str(ROOT / "examples" / script), *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{script} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_train_fashion_mnist(docs_env, tmp_path):
    out = run("train_fashion_mnist.py", *SMALL, "--epochs", "2", "--save", str(tmp_path / "model.pt"), env=docs_env)
    lines = out.splitlines()
    assert lines[0].split() == ["epoch", "train", "valid", "Accuracy"]
    assert [line.split()[0] for line in lines[1:3]] == ["0", "1"]
    import torch
    state = torch.load(tmp_path / "model.pt", weights_only=True)
    assert state and all(isinstance(v, torch.Tensor) for v in state.values())


def test_custom_callback_stops_early_and_keeps_the_best(docs_env):
    # patience 1 over 6 epochs on a tiny subset: if the loss never stalls, all epochs run; either way the report holds.
    out = run("custom_callback.py", *SMALL, "--epochs", "6", "--patience", "1", env=docs_env)
    rows = [line.split() for line in out.splitlines() if line[:1].isdigit()]
    valid = [float(r[2]) for r in rows]
    best = min(range(len(valid)), key=valid.__getitem__)
    assert f"best valid loss {valid[best]:.4f} at epoch {best}" in out
    stopped = "stopping after epoch" in out
    assert stopped == (len(rows) < 6), out
    if stopped: assert len(rows) - 1 - best == 1  # stopped exactly `patience` epochs after the best one


def test_resume_after_crash_is_bit_identical(docs_env):
    # The script exits 1 when the resumed weights differ from the uninterrupted run's: run() asserts status 0.
    out = run("resume_after_crash.py", *SMALL, "--epochs", "2", env=docs_env)
    assert "killed with SIGKILL in epoch 1" in out
    assert re.search(r"resuming from checkpoint-e1-b4(-\w+)?\.pt", out)  # 8 batches an epoch: checkpoints every 2, killed at batch 5
    assert "bit-identical" in out


def test_track_and_export(docs_env, tmp_path):
    # The script exits non-zero when the plain script's logits differ from the trainer's.
    out = run("track_and_export.py", *SMALL, "--epochs", "1", "--out", str(tmp_path), env=docs_env)
    assert "MLflow run 'conv-fashion': FINISHED" in out and "loss/valid" in out
    assert "max |plain - trainer| over 8x10 logits" in out
    lines = out.splitlines()
    plain = next(l for l in lines if l.startswith("predicted:")).split(":", 1)[1]
    assert plain == next(l for l in lines if l.startswith("trainer.get_preds(decode=True):")).split(":", 1)[1]


def test_train_sharded_meta_on_two_processes_then_consolidate(docs_env, tmp_path):
    import torch
    ckpt = tmp_path / "ckpt"
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                           str(ROOT / "examples" / "train_sharded_meta.py"), "--cpu", "--width", "64", "--depth", "2",
                           "--epochs", "1", "--checkpoint", str(ckpt)],
                          env={**docs_env, "OMP_NUM_THREADS": "1"}, cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr[-3000:]}"
    assert "losses by epoch" in done.stdout
    assert all(p.is_dir() and (p / "__1_0.distcp").is_file() for p in ckpt.iterdir())  # each process wrote its part
    from AIsaac.all import consolidate
    sys.path.insert(0, str(ROOT / "examples"))
    try: from train_sharded_meta import Net
    finally: sys.path.remove(str(ROOT / "examples"))
    Net(64, 2).load_state_dict(torch.load(consolidate(ckpt, tmp_path / "model.pt"), weights_only=True))
