"""One process of the sharded-checkpoint test (tests/callbacks/test_accelerate_fsdp_sharded.py).

`python dist_fsdp_sharded_worker.py OUT two` (two processes): (1) a sharded fit with CheckpointCB writing sharded
checkpoints (each process its own part, DCP); (2) that fit ended by an error on rank 1, then (3) a fit resuming from
its newest checkpoint; (4) a model built on the meta device, sharded and materialized with `init`, against (5) the
same model built whole with the same `init`, then sharded. Every DCP `get_*state_dict` call made during the fits is
recorded (none may gather the full state). Process 0 writes each fit's full weights to OUT/<fit>.pt and the rest to
OUT/report.json.
`python dist_fsdp_sharded_worker.py OUT failing` (one process): a sharded fit whose background writes fail.
`python dist_fsdp_sharded_worker.py OUT one CKPT` (one process, the plain model): resumes from the sharded checkpoint
CKPT (`one_sharded`: the model sharded over that one process), writes the model's and optimizer's states at the start of the resumed epoch to OUT/one_start.pt and the final
weights to OUT/one.pt.
"""
import copy
import functools
import json
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.distributed.checkpoint.state_dict as dcp_sd
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from AIsaac.all import (AccelerateCB, Accuracy, BasicTrainCB, Callback, CheckpointCB, DataLoaders, MetricsCB,
                        Trainer, materialize, set_seed)
from AIsaac.runtime.model_state import model_state, unwrap_model
# Its teardown: leave without the interpreter's shutdown (a gloo abort otherwise; see there). The workers run with the
# repository root on PYTHONPATH (tests/helpers/launch.py).
from tests.helpers.dist_fsdp_worker import end_process_group

N_EPOCHS, CRASH_AT = 3, (1, 2)  # 4 training batches per process and epoch
GATHERS: list[str] = []  # the DCP state-dict calls asking for the full state, while recording


def record_full_gathers():
    for name in ("get_model_state_dict", "get_optimizer_state_dict", "get_state_dict"):
        real = getattr(dcp_sd, name)

        def wrapper(*a, _real=real, _name=name, **kw):
            if getattr(kw.get("options"), "full_state_dict", False): GATHERS.append(_name)
            return _real(*a, **kw)
        setattr(dcp_sd, name, wrapper)


def get_model():
    return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3))


def init(module):
    """A deterministic init that any sharding reproduces: each parameter a fixed function of its element's index,
    each process copying in its own shard (`distribute_tensor` cuts the whole parameter as the sharding does)."""
    from torch.distributed.tensor import DTensor, distribute_tensor
    for name, p in module.named_parameters(recurse=False):
        whole = torch.sin(torch.arange(p.numel(), dtype=p.dtype) * 0.37 + len(name)).reshape(p.shape) * 0.4
        p.copy_(distribute_tensor(whole, p.device_mesh, p.placements) if isinstance(p, DTensor) else whole)


def shard(model):
    from torch.distributed.fsdp import fully_shard
    for layer in model[::2]: fully_shard(layer)
    return fully_shard(model)


def make_trainer(seed, model, callbacks=()):
    set_seed(seed)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(80, 4, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
    dls = DataLoaders(DataLoader(TensorDataset(x[:64], y[:64]), batch_size=8, shuffle=True),
                      DataLoader(TensorDataset(x[64:], y[64:]), batch_size=8))
    return Trainer(dls, F.cross_entropy, functools.partial(torch.optim.SGD, momentum=0.9), model,
                   [AccelerateCB(cpu=True), BasicTrainCB(), MetricsCB(accuracy=Accuracy()), *callbacks])


def sharded_model(seed):
    set_seed(seed)
    return shard(get_model())


class CrashCB(Callback):
    def after_batch(self, t):
        if t.training and t.process_index == 1 and (t.epoch, t.batch_num) == CRASH_AT: raise ValueError("crash")


class StartCB(Callback):
    """Keeps the model's and optimizer's states at the first event after the checkpoint is restored."""
    def before_epoch(self, t):
        if t.training and not hasattr(self, "state"):
            self.state = {"model": {k: v.clone() for k, v in unwrap_model(t.model).state_dict().items()},
                          "opt": copy.deepcopy(t.opt.state_dict())}


def finish(trainer, out, name, report):
    state = model_state(trainer.model)  # a collective for the sharded model: every process calls it
    if trainer.is_main_process:
        torch.save(state, out / f"{name}.pt")
        report[name] = {"losses": trainer.MetricsCB.losses_epoch}


def two(out):
    report = {}
    record_full_gathers()
    full = make_trainer(0, sharded_model(0), [CheckpointCB(out / "full", every_n_batches=2, keep=None)])
    full.fit(N_EPOCHS, lr=0.05)
    crashed = make_trainer(0, sharded_model(0), [CheckpointCB(out / "ckpt", every_n_batches=2, keep=2)])
    try: crashed.fit(N_EPOCHS, lr=0.05, callbacks=[CrashCB()])
    except Exception as e: report["crash_error"] = f"{type(e).__name__}: {e}"
    report["after_crash"] = sorted(p.name for p in (out / "ckpt").iterdir())
    resumed = make_trainer(7, sharded_model(7), [CheckpointCB(out / "ckpt", every_n_batches=2, keep=2)])
    resumed.fit(N_EPOCHS, lr=0.05, resume_from=out / "ckpt")
    report["full_gathers"] = list(GATHERS)
    report["after_resume"] = sorted(p.name for p in (out / "ckpt").iterdir())
    finish(full, out, "fsdp", report)
    finish(resumed, out, "fsdp_resumed", report)
    with torch.device("meta"): meta = shard(get_model())
    materialize(meta, init, device="cpu")
    report["meta_param_type"] = type(next(meta.parameters())).__name__
    meta_fit = make_trainer(0, meta)
    meta_fit.fit(N_EPOCHS, lr=0.05)
    eager = get_model()
    with torch.no_grad():
        for m in eager.modules(): init(m)
    eager_fit = make_trainer(0, shard(eager))
    eager_fit.fit(N_EPOCHS, lr=0.05)
    finish(meta_fit, out, "meta", report)
    finish(eager_fit, out, "eager", report)
    if int(os.environ["RANK"]) == 0: (out / "report.json").write_text(json.dumps(report))
    end_process_group()


def one(out, ckpt, sharded=False):
    """Resume in one process: the plain model, or (`sharded`) the model sharded with fully_shard over this one process
    (DCP reshards two processes' parts into one); the states are written as plain tensors."""
    set_seed(3)
    start = StartCB()
    name = "one_sharded" if sharded else "one"
    model = sharded_model(3) if sharded else get_model()
    trainer = make_trainer(3, model, [CheckpointCB(out / f"{name}_ckpt", every_n_batches=2, keep=None)])
    trainer.fit(N_EPOCHS, lr=0.05, resume_from=ckpt, callbacks=[start])
    local = lambda t: t.full_tensor() if hasattr(t, "full_tensor") else t  # noqa: E731
    start.state["model"] = {k: local(v) for k, v in start.state["model"].items()}
    start.state["opt"]["state"] = {i: {k: local(v) for k, v in st.items()} for i, st in start.state["opt"]["state"].items()}
    torch.save(start.state, out / f"{name}_start.pt")
    torch.save(model_state(trainer.model), out / f"{name}.pt")
    if sharded: end_process_group()


def failing(out):
    """A one-process sharded fit whose background writes fail (the disk is full): the failure is raised at the next
    save, with its class, and no checkpoint folder (nor a temporary one) is left."""
    from concurrent.futures import Future
    import torch.distributed.checkpoint as dcp

    def full_disk(*a, **kw):
        future = Future()
        future.set_exception(OSError(28, "No space left on device"))
        return future
    # First, plain SGD (an optimizer without state) with sharded checkpoints: the saves take no step of the fit.
    sgd = make_trainer(0, sharded_model(0), [CheckpointCB(out / "sgd", every_n_batches=2, keep=1)])
    sgd.opt_func = torch.optim.SGD
    sgd.fit(N_EPOCHS, lr=0.05)
    report = {"sgd_steps": sgd.step}
    dcp.async_save = full_disk
    trainer = make_trainer(0, sharded_model(0), [CheckpointCB(out / "failing", every_n_batches=2, keep=None)])
    try: trainer.fit(N_EPOCHS, lr=0.05)
    except Exception as e:
        report |= {"error": f"{type(e).__name__}: {e}", "cause": type(e.__cause__).__name__,
                  "at": [trainer.epoch, trainer.batch_num]}
    report["left"] = sorted(p.name for p in (out / "failing").iterdir())
    (out / "failing.json").write_text(json.dumps(report))
    end_process_group()


if __name__ == "__main__":
    if sys.argv[2] == "two": two(Path(sys.argv[1]))
    elif sys.argv[2] == "failing": failing(Path(sys.argv[1]))
    else: one(Path(sys.argv[1]), sys.argv[3], sharded=sys.argv[2] == "one_sharded")
