"""One process of the sharded-training test (tests/callbacks/test_accelerate_fsdp.py starts two).

In one process group: (1) the fit with DDP (AccelerateCB prepares the plain model); (2) the same fit with the model
sharded by PyTorch's `fully_shard` (FSDP2) first; (3) that sharded fit with CheckpointCB, ended by an error on rank 1;
(4) a sharded fit resuming from its newest checkpoint. Process 0 writes each fit's full weights to OUT/<fit>.pt and
the epoch numbers to OUT/report.json. Usage: python dist_fsdp_worker.py OUT (with RANK, WORLD_SIZE, ... set).
"""
import functools
import json
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.distributed.fsdp import fully_shard
from torch.utils.data import DataLoader, TensorDataset

from AIsaac.all import (AccelerateCB, Accuracy, BasicTrainCB, Callback, CheckpointCB, DataLoaders, MetricsCB,
                        Trainer, set_seed)
from AIsaac.runtime.model_state import model_state

N_EPOCHS, CRASH_AT = 3, (1, 2)  # 4 training batches per process and epoch


def make_trainer(seed, shard, callbacks=()):
    set_seed(seed)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(80, 4, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
    dls = DataLoaders(DataLoader(TensorDataset(x[:64], y[:64]), batch_size=8, shuffle=True),
                      DataLoader(TensorDataset(x[64:], y[64:]), batch_size=8))
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3))
    if shard:
        for layer in model[::2]: fully_shard(layer)
        fully_shard(model)
    return Trainer(dls, F.cross_entropy, functools.partial(torch.optim.SGD, momentum=0.9), model,
                   [AccelerateCB(cpu=True), BasicTrainCB(), MetricsCB(accuracy=Accuracy()), *callbacks])


class CrashCB(Callback):
    def after_batch(self, t):
        if t.training and t.process_index == 1 and (t.epoch, t.batch_num) == CRASH_AT: raise ValueError("crash")


def end_process_group():
    """End the process group, then the process, without the interpreter's shutdown.

    With a sharded model one of gloo's process groups outlives `destroy_process_group` (something in torch still holds
    it), and its worker threads free the last collective's tensors after the caller has moved on. Freeing a tensor that
    Python has seen takes the GIL; when the interpreter has begun to shut down by then, the thread exits inside a
    destructor and the process aborts ("terminate called without an active exception", exit -6) after all its work
    (seen in about 1 run in 20). Everything this worker writes is closed by now, so it leaves without that shutdown."""
    dist.barrier()
    dist.destroy_process_group()
    sys.stdout.flush(), sys.stderr.flush()
    os._exit(0)


def finish(trainer, out, name, report):
    state = model_state(trainer.model)  # a collective for the sharded model: every process calls it
    if trainer.is_main_process:
        torch.save(state, out / f"{name}.pt")
        report[name] = {"losses": trainer.MetricsCB.losses_epoch, "metrics": trainer.MetricsCB.metrics_epoch,
                        "param_type": type(next(trainer.model.parameters())).__name__}


if __name__ == "__main__":
    out, report = Path(sys.argv[1]), {}
    for name, shard in (("ddp", False), ("fsdp", True)):
        trainer = make_trainer(0, shard)
        trainer.fit(N_EPOCHS, lr=0.05)
        finish(trainer, out, name, report)
    crashed = make_trainer(0, True, [CheckpointCB(out / "ckpt", every_n_batches=2, keep=None)])
    try: crashed.fit(N_EPOCHS, lr=0.05, callbacks=[CrashCB()])  # for this fit only: not in the resumed setup
    except Exception as e: report["crash_error"] = f"{type(e).__name__}: {e}"
    resumed = make_trainer(7, True, [CheckpointCB(out / "ckpt", every_n_batches=2, keep=None)])
    resumed.fit(N_EPOCHS, lr=0.05, resume_from=out / "ckpt")
    finish(resumed, out, "fsdp_resumed", report)
    if int(os.environ["RANK"]) == 0: (out / "report.json").write_text(json.dumps(report))
    end_process_group()
