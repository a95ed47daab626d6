"""One process of the no-hang grid (tests/callbacks/test_accelerate_no_hang.py starts two of these).

One pair of processes runs every scenario in turn, each a short fit in the same process group: at every event (in
both phases for batch and epoch events) rank 0 or rank 1 alone raises an error, a CancelFitException (a time limit,
say), or the cancel exception of the event's own level. After each scenario this process appends a JSON line to
OUT/rank<r>.jsonl (what error ended its fit, its optimizer steps, a digest of its final weights, the seconds taken),
so a hang shows which scenario it was in. A last plain fit checks that the process group still works.
Usage: python dist_grid_worker.py OUT (with RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT set).
"""
import gc
import hashlib
import json
import os
import sys
import time
from datetime import timedelta
from pathlib import Path

import torch
import torch.nn.functional as F
from accelerate.utils import InitProcessGroupKwargs
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from AIsaac.callback import Callback, Order
from AIsaac.callbacks.accelerate import AccelerateCB
from AIsaac.callbacks.basic_train import BasicTrainCB
from AIsaac.callbacks.checkpoint import CheckpointCB
from AIsaac.callbacks.metrics import Accuracy, MetricsCB
from AIsaac.callbacks.save_best import SaveBestCB
from AIsaac.data.loaders import DataLoaders
from AIsaac.events import EPOCH_EVENTS, FIT_EVENTS
from AIsaac.exceptions import CancelBatchException, CancelEpochException, CancelFitException
from AIsaac.trainer import Trainer

N_TRAIN, N_VALID, BS, EPOCHS = 24, 13, 4, 2  # 3 training and 2 validation batches per process and epoch
AT_BATCH = 1  # batch events raise at this batch of epoch 0
# The events a callback can run at: `backward` is AccelerateCB's own (it claims it), so no other callback runs there.
TRAIN_BATCH = ("before_batch", "predict", "get_loss", "before_backward", "step", "zero_grad", "after_batch",
               "cleanup_batch")
VALID_BATCH = ("before_batch", "predict", "get_loss", "after_batch", "cleanup_batch")
PLACES = ([(e, None, Order.DEFAULT) for e in FIT_EVENTS] +
          [(e, p, Order.DEFAULT) for p in ("train", "valid") for e in EPOCH_EVENTS] +
          [(e, "train", Order.DEFAULT) for e in TRAIN_BATCH] + [(e, "valid", Order.DEFAULT) for e in VALID_BATCH] +
          # and where the order matters: before AccelerateCB prepares, and before MetricsCB's reduction
          [("before_fit", None, Order.FIRST), ("cleanup_epoch", "valid", Order.GUARD)])
KINDS = ("error", "cancel_fit", "cancel_level")


def scenarios():
    for event, phase, order in PLACES:
        for kind in KINDS:
            if kind == "cancel_level" and event in FIT_EVENTS: continue  # the same as cancel_fit there
            for rank in (0, 1): yield event, phase, order, kind, rank


def scenario_name(event, phase, order, kind, rank) -> str:
    return f"{event}{'@' + phase if phase else ''}{'' if order == Order.DEFAULT else f'#order{order}'}:{kind}:rank{rank}"


def data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N_TRAIN + N_VALID, 4, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
    return DataLoaders(DataLoader(TensorDataset(x[:N_TRAIN], y[:N_TRAIN]), batch_size=BS, shuffle=True),
                       DataLoader(TensorDataset(x[N_TRAIN:], y[N_TRAIN:]), batch_size=BS))


def make_exception(event, kind, rank):
    if kind == "error": return ValueError(f"boom at {event} on rank {rank}")
    if kind == "cancel_fit" or event in FIT_EVENTS: return CancelFitException()
    return CancelEpochException() if event in EPOCH_EVENTS else CancelBatchException()


class RaiseCB(Callback):
    """Raises `exc` at `event` of epoch 0 in `phase` (at batch AT_BATCH for batch events)."""

    def __init__(self, event, phase, exc, order):
        self.event, self.phase, self.exc, self.order = event, phase, exc, order
        setattr(self, event, self._maybe_raise)

    def _maybe_raise(self, t):
        if self.event in FIT_EVENTS: raise self.exc
        if t.epoch == 0 and t.training == (self.phase == "train") and (
                self.event in EPOCH_EVENTS or t.batch_num == AT_BATCH): raise self.exc


class CountStepsCB(Callback):
    def __init__(self): self.steps = 0
    def step(self, t): self.steps += 1


def digest(model) -> str:
    # The parameters: DDP keeps them equal; BatchNorm's running statistics are each process's own after a
    # training forward (DDP broadcasts them from process 0 at the start of the next one).
    h = hashlib.sha256()
    for v in model.parameters(): h.update(v.detach().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def fit(acc, rank, folder, raiser=None):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))  # buffers: DDP broadcasts
    steps = CountStepsCB()
    cbs = [acc, BasicTrainCB(), MetricsCB(accuracy=Accuracy()), SaveBestCB(),
           CheckpointCB(folder, every_n_batches=2, keep=1), steps]
    trainer = Trainer(data(), F.cross_entropy, torch.optim.SGD, model, cbs + ([raiser] if raiser else []))
    error = None
    try: trainer.fit(EPOCHS, lr=0.1)
    except BaseException as e: error = f"{type(e).__name__}: {e}"
    return {"error": error, "steps": steps.steps, "weights": digest(model)}


if __name__ == "__main__":
    gc.freeze()  # Accelerate's free_memory() runs gc.collect() after every fit: leave the imported modules out of it
    out, rank = Path(sys.argv[1]), int(os.environ["RANK"])
    only = sys.argv[2] if len(sys.argv) > 2 else None  # a substring of scenario names, to rerun some by hand
    # A collective left waiting fails after 60 s instead of gloo's default 30 minutes; the test's bound is tighter.
    acc = AccelerateCB(cpu=True, kwargs_handlers=[InitProcessGroupKwargs(timeout=timedelta(seconds=60))])
    with open(out / f"rank{rank}.jsonl", "w") as log:
        for i, (event, phase, order, kind, raiser_rank) in enumerate(scenarios()):
            name = scenario_name(event, phase, order, kind, raiser_rank)
            if only and only not in name: continue
            raiser = RaiseCB(event, phase, make_exception(event, kind, raiser_rank), order) \
                if rank == raiser_rank else None
            start = time.perf_counter()
            result = fit(acc, rank, out / "ckpt" / str(i), raiser)
            log.write(json.dumps({"scenario": name, "event": event, "phase": phase, "kind": kind,
                                  "raiser": raiser_rank, "seconds": time.perf_counter() - start, **result}) + "\n")
            log.flush()
        result = fit(acc, rank, out / "ckpt" / "last")
        log.write(json.dumps({"scenario": "plain fit after the grid", "seconds": 0, **result}) + "\n")
