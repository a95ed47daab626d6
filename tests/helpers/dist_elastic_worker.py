"""One process of the elastic resume tests (tests/callbacks/test_accelerate_elastic.py starts them).

Each fit records the sample ids every process trains on (the dataset gives its index as a third column).
  save OUT      on 2 processes: an uninterrupted fit ("full"), then the same fit with CheckpointCB ended by an error
                on process 1 at CRASH_AT ("crashed"): its newest checkpoint is mid-epoch.
  save1 OUT     on 1 process: a fit with CheckpointCB cancelled after CANCEL_AT: the checkpoint on the way out.
  resume OUT    on any number: resume from OUT/ckpt ("resumed").
OUT/<mode>_rank<r>.json holds each fit's records: [epoch, batch, ids] per training batch.
Usage: python dist_elastic_worker.py MODE OUT (with RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT set).
"""
import json
import os
import sys
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from AIsaac.all import AccelerateCB, BasicTrainCB, Callback, CheckpointCB, DataLoaders, Trainer, set_seed
from AIsaac.exceptions import CancelFitException

N_EPOCHS, BS, N_TRAIN, EVERY = 3, 4, 42, 2  # 11 batches of the whole set per epoch, the last one short
CRASH_AT, CANCEL_AT = (1, 3), (1, 4)  # (epoch, batch index)


class Indexed(Dataset):
    """(x, y, index): the index tells which sample a batch holds."""
    def __init__(self, n):
        g = torch.Generator().manual_seed(0)
        self.x, self.y = torch.randn(n, 5, generator=g), torch.randint(0, 3, (n,), generator=g)

    def __len__(self): return len(self.x)
    def __getitem__(self, i): return self.x[i], self.y[i], i


def loss(preds, y, idx): return nn.functional.cross_entropy(preds, y)


class RecordCB(Callback):
    def __init__(self): self.records = []

    def after_batch(self, t):
        if t.training: self.records.append([t.epoch, t.batch_num, t.batch[2].tolist()])


class CrashCB(Callback):
    def after_batch(self, t):
        if t.training and t.process_index == 1 and (t.epoch, t.batch_num) == CRASH_AT: raise ValueError("crash")


class CancelCB(Callback):
    def after_batch(self, t):
        if t.training and (t.epoch, t.batch_num) == CANCEL_AT: raise CancelFitException()


def make_trainer(out, seed):
    set_seed(seed + int(os.environ["RANK"]))
    # The loader's own generator: the order of later epochs then follows it on any number of processes.
    dl = DataLoader(Indexed(N_TRAIN), batch_size=BS, shuffle=True, generator=torch.Generator().manual_seed(5))
    model = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Dropout(0.2), nn.Linear(8, 3))
    return Trainer(DataLoaders(dl, None), loss, torch.optim.SGD, model,
                   [AccelerateCB(cpu=True), BasicTrainCB(), RecordCB(),
                    CheckpointCB(out / "ckpt", every_n_batches=EVERY, keep=None)])


def fit(out, seed, **kwargs):
    trainer, report = make_trainer(out, seed), {}
    try: trainer.fit(N_EPOCHS, lr=0.1, **kwargs)
    except Exception as e: report["error"] = f"{type(e).__name__}: {e}"
    report["records"] = trainer.RecordCB.records
    return report


if __name__ == "__main__":
    mode, out, rank = sys.argv[1], Path(sys.argv[2]), int(os.environ["RANK"])
    if mode == "save":
        reports = {"full": fit(out / "full", 0), "crashed": fit(out, 0, callbacks=[CrashCB()])}
    elif mode == "save1": reports = {"crashed": fit(out, 0, callbacks=[CancelCB()])}
    else: reports = {"resumed": fit(out, 1234, resume_from=out / "ckpt")}
    (out / f"{mode}_rank{rank}.json").write_text(json.dumps(reports))
