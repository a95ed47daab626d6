"""One process of the two-process preemption test (tests/callbacks/test_accelerate_preemption.py starts two).

Modes: `full`, an uninterrupted fit; `preempt`, the same fit with CheckpointCB, where rank 1 gets SIGTERM (as a
scheduler sends it) in the middle of epoch 1 and the fit stops with `Preempted` (exit code 75); `resume`, a new
trainer, built from another seed, resuming from that checkpoint. `full` and `resume` write their final weights to
OUT/<mode>_rank<r>.pt; `preempt` writes the step it stopped after to OUT/preempt_rank<r>.json before exiting.
Usage: python dist_preempt_worker.py OUT MODE (with RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT set).
"""
import json
import os
import signal
import sys
from pathlib import Path

import torch

from AIsaac.all import Callback, CheckpointCB
from AIsaac.runtime.preemption import Preempted
from tests.helpers.dist_resume_worker import N_EPOCHS, make_trainer

SIGNAL_AT = (1, 2)  # rank 1 is signalled in after_batch of epoch 1, batch 2 (after that batch's vote)


class SignalRank1(Callback):
    def after_batch(self, t):
        if t.training and t.process_index == 1 and (t.epoch, t.batch_num) == SIGNAL_AT: os.kill(os.getpid(), signal.SIGTERM)


if __name__ == "__main__":
    out, mode, rank = Path(sys.argv[1]), sys.argv[2], int(os.environ["RANK"])
    ckpt = CheckpointCB(out / "ckpt", every_epoch=True, keep=None)
    if mode == "full":
        t = make_trainer(0)
        t.fit(N_EPOCHS, lr=0.05)
    elif mode == "preempt":
        t = make_trainer(0, [ckpt])
        try: t.fit(N_EPOCHS, lr=0.05, callbacks=[SignalRank1()])
        except Preempted as e:
            (out / f"preempt_rank{rank}.json").write_text(json.dumps({"step": t.step, "signal": e.signum}))
            raise
    else:
        t = make_trainer(1234, [ckpt])
        t.fit(N_EPOCHS, lr=0.05, resume_from=out / "ckpt")
    torch.save(t.model.state_dict(), out / f"{mode}_rank{rank}.pt")
