"""How long a periodic checkpoint stops the loop: CheckpointCB with background writes (the default) against
`background=False` (the write in the loop, as before), beside `torch.save` + fsync of the same state and
`torch.distributed.checkpoint.async_save`'s blocking time, all in this process, on this machine's CPU clock and disk.

    python bench/checkpoint_stall_bench.py [--params 50e6] [--saves 3]      # log: bench/logs/checkpoint_stall.log

The model: Linear layers of about `--params` parameters trained with Adam (state: weights and two moments, about
12 bytes a parameter). The stall of a save: the median time of a training batch with a save minus the median of the
batches without one. Wall clock (the write runs in another thread, which the CPU clock of one thread would miss).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from AIsaac.all import BasicTrainCB, CheckpointCB, DataLoaders, DeviceCB, Trainer  # noqa: E402

WIDTH = 2048


def model_of(n_params: float) -> nn.Module:
    layers = max(1, round(n_params / (WIDTH * WIDTH + WIDTH)))
    return nn.Sequential(*[nn.Linear(WIDTH, WIDTH) for _ in range(layers)])


class Clock:
    """Times each training batch from before_batch to cleanup_batch's end (CheckpointCB saves in cleanup_batch)."""
    order = 1000

    def __init__(self): self.times, self._t = [], 0.0
    def before_batch(self, trainer): self._t = time.perf_counter()
    def cleanup_batch(self, trainer):
        if trainer.training: self.times.append(time.perf_counter() - self._t)


class Start:
    order = -1000
    def __init__(self, clock): self.clock = clock
    def before_batch(self, trainer): self.clock._t = time.perf_counter()


def fit_times(n_params: float, every: int, n_batches: int, folder: Path, background: bool | None, device: str):
    torch.manual_seed(0)
    x, y = torch.randn(n_batches * 8, WIDTH), torch.randn(n_batches * 8, WIDTH)
    dls = DataLoaders(DataLoader(TensorDataset(x, y), batch_size=8), None)
    clock = Clock()
    cbs = [BasicTrainCB(), DeviceCB(device), Start(clock), clock]
    if background is not None:
        cbs.append(CheckpointCB(folder, every_n_batches=every, every_epoch=False, keep=1, background=background))
    t = Trainer(dls, nn.MSELoss(), torch.optim.Adam, model_of(n_params), cbs)
    t0 = time.perf_counter()
    t.fit(1, lr=1e-4)
    total = time.perf_counter() - t0
    saved = [clock.times[i] for i in range(every - 1, n_batches, every)]
    plain = [clock.times[i] for i in range(1, n_batches) if (i + 1) % every and i % every]  # not the one after either
    return saved, plain, total, t


def direct_saves(trainer: Trainer, folder: Path, n: int):
    from AIsaac.runtime.checkpoint_file import save_checkpoint
    state = {"model": trainer.model.state_dict(), "opt": trainer.opt.state_dict()}
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        save_checkpoint(state, folder / f"direct-{i}.pt")  # torch.save + fsync + atomic rename
        times.append(time.perf_counter() - t0)
    return times


def dcp_async(trainer: Trainer, folder: Path, n: int):
    import torch.distributed.checkpoint as dcp
    if not dist.is_initialized():
        dist.init_process_group("gloo", init_method=f"file://{folder / 'store'}", rank=0, world_size=1)
    state = {"model": trainer.model.state_dict(), "opt": trainer.opt.state_dict()}
    blocked, total = [], []
    for i in range(n):
        t0 = time.perf_counter()
        future = dcp.async_save(state, checkpoint_id=str(folder / f"dcp-{i}"))
        blocked.append(time.perf_counter() - t0)
        future.result()
        total.append(time.perf_counter() - t0)
    return blocked, total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--params", type=float, default=50e6)
    ap.add_argument("--saves", type=int, default=3)
    ap.add_argument("--every", type=int, default=20, help="batches between saves (far enough apart for a write to end)")
    ap.add_argument("--device", default="cpu", help="cuda: the state is copied from GPU memory through pinned buffers")
    ap.add_argument("--log", default=str(Path(__file__).parent / "logs" / "checkpoint_stall.log"))
    args = ap.parse_args()
    n_batches = args.every * args.saves + 2
    med = statistics.median
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        _, base, _, trainer = fit_times(args.params, args.every, n_batches, tmp / "none", None, args.device)
        rows = {}
        for name, bg in (("background=False (the write in the loop)", False), ("background=True (the default)", True)):
            saved, plain, total, t = fit_times(args.params, args.every, n_batches, tmp / name.split()[0], bg,
                                               args.device)
            rows[name] = (med(saved) - med(plain), med(plain), total)
        n = sum(p.numel() for p in trainer.model.parameters())
        size = sum(v.numel() * v.element_size() for v in trainer.model.state_dict().values()) * 3
        direct = med(direct_saves(trainer, tmp, args.saves))
        blocked, dcp_total = dcp_async(trainer, tmp, args.saves)
    lines = [f"# {n / 1e6:.1f}M parameters, Adam: about {size / 1e9:.2f} GB of state; a save every {args.every} "
             f"batches, {args.saves} saves; model on {args.device}; {os.cpu_count()} CPUs, torch {torch.__version__}; "
             f"wall clock, medians",
             f"# a batch without a save: {med(base):.3f} s (no CheckpointCB)",
             "| what | loop stalled per save (s) | over torch.save + fsync | over DCP async_save's block |",
             "|---|---|---|---|"]
    for name, (stall, _, _) in rows.items():
        lines.append(f"| CheckpointCB, {name} | {stall:.3f} | {stall / direct:.2f} | {stall / med(blocked):.2f} |")
    lines.append(f"| torch.save + fsync + rename of the same state | {direct:.3f} | 1.00 | {direct / med(blocked):.2f} |")
    lines.append(f"| torch.distributed.checkpoint.async_save, blocking part (whole save: {med(dcp_total):.3f} s) | "
                 f"{med(blocked):.3f} | {med(blocked) / direct:.2f} | 1.00 |")
    text = "\n".join(lines) + "\n"
    print(text, end="")
    Path(args.log).write_text(text)


if __name__ == "__main__":
    main()
