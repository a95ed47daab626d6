"""One process of the two-process checkpoint test (tests/callbacks/test_accelerate_checkpoint.py starts two).

In one process group: (1) an uninterrupted fit; (2) the same fit with CheckpointCB, ended by an error on rank 1 at
epoch 1, batch 4 (as a crash would end it); (3) a new trainer, built from another seed, resuming from the newest
checkpoint of (2). Each fit's final weights go to OUT/<fit>_rank<r>.pt, and (1)'s weights after epoch 0 to
OUT/epoch0_rank<r>.pt. Dropout, shuffling and a data transform that draws from torch, NumPy and Python make every
random stream matter, each process's own (seeded apart).
Usage: python dist_resume_worker.py OUT (with RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT set).
"""
import functools
import json
import os
import sys
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader

from AIsaac.all import (AccelerateCB, BasicTrainCB, Callback, CheckpointCB, DataLoaders, MetricsCB, Trainer,
                        set_seed)
from tests.helpers.resume_run import NoisyData

N_EPOCHS, BS, N_TRAIN, CRASH_AT, EVERY = 3, 4, 48, (1, 4), 2  # 6 training batches per process and epoch


def make_trainer(seed, callbacks=()):
    set_seed(seed + int(os.environ["RANK"]))  # each process its own random streams (DDP gives them rank 0's weights)
    dls = DataLoaders(DataLoader(NoisyData(N_TRAIN), batch_size=BS, shuffle=True),
                      DataLoader(NoisyData(12), batch_size=BS))
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Dropout(0.3), nn.Linear(8, 3))
    return Trainer(dls, nn.CrossEntropyLoss(), functools.partial(torch.optim.SGD, momentum=0.9), model,
                   [AccelerateCB(cpu=True), BasicTrainCB(), MetricsCB(), *callbacks])


class SaveAfterEpoch0(Callback):
    def __init__(self, path): self.path = path

    def after_epoch(self, t):
        if t.epoch == 0 and not t.training: torch.save(t.model.module.state_dict(), self.path)


class CrashCB(Callback):
    def after_batch(self, t):
        if t.training and t.process_index == 1 and (t.epoch, t.batch_num) == CRASH_AT: raise ValueError("crash")


if __name__ == "__main__":
    out, rank = Path(sys.argv[1]), int(os.environ["RANK"])
    report = {}
    full = make_trainer(0, [SaveAfterEpoch0(out / f"epoch0_rank{rank}.pt")])
    full.fit(N_EPOCHS, lr=0.05)
    torch.save(full.model.state_dict(), out / f"full_rank{rank}.pt")
    report["full_train_losses"] = [e["train"] for e in full.MetricsCB.losses_epoch]

    crashed = make_trainer(0, [CheckpointCB(out / "ckpt", every_n_batches=EVERY, keep=None)])
    try: crashed.fit(N_EPOCHS, lr=0.05, callbacks=[CrashCB()])  # for this fit only: not in the resumed setup
    except Exception as e: report["crash_error"] = f"{type(e).__name__}: {e}"
    report["files_after_crash"] = sorted(p.name for p in (out / "ckpt").glob("*.pt"))

    resumed = make_trainer(1234, [CheckpointCB(out / "ckpt", every_n_batches=EVERY, keep=None)])
    resumed.fit(N_EPOCHS, lr=0.05, resume_from=out / "ckpt")
    torch.save(resumed.model.state_dict(), out / f"resumed_rank{rank}.pt")
    report["resumed_train_losses"] = [e["train"] for e in resumed.MetricsCB.losses_epoch]
    (out / f"rank{rank}.json").write_text(json.dumps(report))
