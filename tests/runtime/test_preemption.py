"""SIGTERM during a fit: the step in progress finishes, a checkpoint is written, the process exits with the requeue
code, and a resumed fit ends bit-identical to an uninterrupted one."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from AIsaac.all import BasicTrainCB, DataLoaders, Trainer
from AIsaac.runtime.preemption import REQUEUE_EXIT_CODE, Preempted

ROOT = Path(__file__).parents[2]
SCRIPT = ROOT / "tests" / "helpers" / "resume_run.py"


def run(*args, **kw):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, str(SCRIPT), *map(str, args)], env=env, start_new_session=True, **kw)


def test_sigterm_mid_epoch_checkpoints_exits_75_and_resumes_bit_identical(tmp_path):
    ck, marker = tmp_path / "ck", tmp_path / "ready"
    proc = run("preempt", ck, marker, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read().decode()
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None: os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == REQUEUE_EXIT_CODE, err.decode()
    assert "Preempted by SIGTERM" in err.decode()
    # Written on the way out, after the step of epoch 1, batch 6: 7 batches into epoch 1.
    assert any(p.name.startswith("checkpoint-e1-b7") for p in ck.iterdir())
    for mode, target in (("full", tmp_path / "full.pt"), ("resume", tmp_path / "resumed.pt")):
        args = (target,) if mode == "full" else (ck, target)
        p = run(mode, *args, stderr=subprocess.PIPE)
        _, err = p.communicate(timeout=180)
        assert p.returncode == 0, err.decode()
    full, resumed = torch.load(tmp_path / "full.pt"), torch.load(tmp_path / "resumed.pt")
    assert all(torch.equal(full[k], resumed[k]) for k in full)


def test_preempted_in_process_raises_system_exit_with_the_requeue_code():
    x = torch.randn(64, 3)
    dls = DataLoaders.from_tensors((x, x.sum(1, keepdim=True)), (x, x.sum(1, keepdim=True)), batch_size=8)

    class Signal:
        def after_batch(self, trainer):
            if trainer.training and trainer.batch_num == 2: os.kill(os.getpid(), signal.SIGTERM)

    t = Trainer(dls, nn.MSELoss(), torch.optim.SGD, nn.Linear(3, 1), [BasicTrainCB(), Signal()])
    with pytest.raises(Preempted) as info: t.fit(2)
    assert info.value.code == REQUEUE_EXIT_CODE and t.step == 3  # the batch in progress finished its step
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL or callable(signal.getsignal(signal.SIGTERM))
