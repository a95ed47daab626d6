"""One process of the FSDP2 kill test (tests/callbacks/test_accelerate_fsdp_kill.py starts two).

Modes: `kill`, the sharded fit of dist_fsdp_worker with CheckpointCB(every_n_batches=2), where process 0 writes
OUT/marker at the start of epoch 1, batch 2 (the sharded checkpoint-e1-b2 folder written by then) and sleeps there until the test
SIGKILLs both processes; `finish`, in one process group, the uninterrupted sharded fit, then a sharded fit built from
another seed resuming from OUT/ckpt. Process 0 writes each fit's full (gathered) weights to OUT/<fit>.pt.
Usage: python dist_fsdp_kill_worker.py OUT MODE (with RANK, WORLD_SIZE, ... set).
"""
import os
import sys
import time
from pathlib import Path

import torch

from AIsaac.all import Callback, CheckpointCB
from AIsaac.runtime.model_state import model_state
from tests.helpers.dist_fsdp_worker import N_EPOCHS, end_process_group, make_trainer

KILL_AT = (1, 2)  # (epoch, batch): the checkpoint after two batches of epoch 1 is the newest when the kill comes


class MarkAndWait(Callback):
    def __init__(self, path): self.path = path

    def before_batch(self, t):
        # CheckpointCB saved at the previous batch's cleanup, in the background (a sharded checkpoint): waited for,
        # so the folder is complete when the marker appears.
        if t.training and t.process_index == 0 and (t.epoch, t.batch_num) == KILL_AT:
            t.named_callbacks["CheckpointCB"]._sharded_writer.wait()
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(f"{t.step}")
            os.replace(tmp, self.path)  # whole when it appears: the test kills as soon as it sees it
            time.sleep(300)  # killed here; process 1 waits in the next collective meanwhile


def save_full(trainer, path):
    state = model_state(trainer.model)  # a collective for the sharded model: every process calls it
    if trainer.is_main_process: torch.save(state, path)


if __name__ == "__main__":
    out, mode = Path(sys.argv[1]), sys.argv[2]
    if mode == "kill":
        killed = make_trainer(0, True, [CheckpointCB(out / "ckpt", every_n_batches=2, keep=None)])
        killed.fit(N_EPOCHS, lr=0.05, callbacks=[MarkAndWait(out / "marker")])
        sys.exit("the fit was not killed")
    full = make_trainer(0, True)
    full.fit(N_EPOCHS, lr=0.05)
    save_full(full, out / "full.pt")
    resumed = make_trainer(7, True, [CheckpointCB(out / "ckpt", every_n_batches=2, keep=None)])
    resumed.fit(N_EPOCHS, lr=0.05, resume_from=out / "ckpt")
    save_full(resumed, out / "resumed.pt")
    end_process_group()
