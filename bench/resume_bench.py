"""Resume time against the position: from `fit(resume_from=...)` to the first trained batch, at batch 10, 1,000 and
3,000 of an epoch, before (every batch before the position loaded again and dropped: the replay) and after (map-style
data skipped at the batch sampler, a stream's saved state restored), as ratios to the time a hand-written loop takes
to train its first batch on the same loader.

Two loaders, each costing 4.5 ms a batch (a sleep standing for decoding, plus a random augmentation drawing from
torch, NumPy and `random`): map-style data in a `DataLoader` with 2 worker processes, and a stream (an
`IterableDataset` with `state_dict`/`load_state_dict`, read in the main process). The checkpoints are written by one
fit per loader with the sleep off; each resume is timed in this process, `--reps` times (median). "before" runs the
replay the resume did until issue 32 (`resume._replayed`) in place of `resume.resume_batches`.

  python bench/resume_bench.py [--reps 3] [--positions 10 1000 3000] [--log bench/logs/resume_bench.log]
"""
from __future__ import annotations

import argparse
import gc
import os
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, IterableDataset

import common  # noqa: F401  (this checkout's AIsaac first on the path)
from AIsaac.all import BasicTrainCB, CancelFitException, Callback, CheckpointCB, DataLoaders, Trainer, set_seed
from AIsaac.runtime import resume
from AIsaac.runtime.checkpoint_file import checkpoint_files
from AIsaac.runtime.rng import set_loader_rng_state

BS, FEATURES, DELAY = 16, 8, 0.0045
SLEEP = {"on": False}  # read when a batch is loaded; workers fork after it is set


def augment(x: torch.Tensor) -> torch.Tensor:
    return x + 0.1 * torch.randn(FEATURES) + 0.1 * float(np.random.randn()) + 0.1 * random.random()


class MapData(Dataset):
    """Map-style data of `n` rows; a batch costs DELAY (one sleep per batch, as a batched decode would)."""

    def __init__(self, n: int):
        g = torch.Generator().manual_seed(0)
        self.x, self.y = torch.randn(n, FEATURES, generator=g), torch.randint(0, 2, (n,), generator=g)

    def __len__(self): return len(self.x)
    def __getitem__(self, i): return augment(self.x[i]), self.y[i]

    def __getitems__(self, indices):
        if SLEEP["on"]: time.sleep(DELAY)
        return [self[i] for i in indices]


class Stream(IterableDataset):
    """A stream of `n` rows whose position is a state; a batch of BS rows costs DELAY."""

    def __init__(self, n: int): self.data, self.pos, self.start = MapData(n), 0, 0

    def __iter__(self):
        start, self.start = self.start, 0
        for k in range(start, len(self.data)):
            if SLEEP["on"] and k % BS == 0: time.sleep(DELAY)
            self.pos = k + 1
            yield self.data[k]

    def state_dict(self): return {"pos": self.pos}
    def load_state_dict(self, state): self.start = state["pos"]


def loader(kind: str, n: int) -> DataLoader:
    if kind == "map": return DataLoader(MapData(n), batch_size=BS, shuffle=True, num_workers=2)
    return DataLoader(Stream(n), batch_size=BS)


def model() -> nn.Module: return nn.Sequential(nn.Linear(FEATURES, 32), nn.ReLU(), nn.Linear(32, 2))


def trainer(kind: str, n: int) -> Trainer:
    set_seed(0)
    return Trainer(DataLoaders(loader(kind, n), None), nn.CrossEntropyLoss(), torch.optim.SGD, model(),
                   [BasicTrainCB()])


class SaveAt(CheckpointCB):
    """Writes a checkpoint at each of `positions` (batches done in the first epoch), and stops after the last."""

    def __init__(self, folder: Path, positions: list[int]):
        super().__init__(folder, every_epoch=False, keep=None)
        self.positions = set(positions)

    def cleanup_batch(self, trainer):
        if trainer.training and trainer.batch_num + 1 in self.positions:
            self._save(trainer, (trainer.epoch, trainer.batch_num + 1))
            if trainer.batch_num + 1 == max(self.positions): raise CancelFitException()


class FirstBatch(Callback):
    """Notes the time the first training batch is trained, and stops the fit there."""

    def after_batch(self, trainer):
        if trainer.training:
            self.at = time.perf_counter()
            raise CancelFitException()


def checkpoints(kind: str, n: int, positions: list[int], folder: Path) -> dict[int, Path]:
    """The checkpoints `positions` batches into the epoch, written by one fit with the loader's sleep off."""
    SLEEP["on"] = False
    trainer(kind, n).fit(1, lr=0.1, callbacks=[SaveAt(folder, positions)])
    files = {int(f.name.split("-b")[1].split("-")[0]): f for f in checkpoint_files(folder)}
    return {p: files[p] for p in positions}


def replay(dl: Any, state: dict[str, Any], trainer: Any = None) -> Any:
    """The resume before issue 32: every batch before the position loaded again and dropped."""
    set_loader_rng_state(dl, state["loader_rng"])
    return resume._replayed(dl, state, trainer)


def resume_time(kind: str, n: int, file: Path, before: bool) -> float:
    SLEEP["on"] = True
    t = trainer(kind, n)
    first = FirstBatch()
    after = resume.resume_batches
    if before: resume.resume_batches = replay  # type: ignore[assignment]
    try:
        start = time.perf_counter()
        t.fit(1, lr=0.1, callbacks=[first], resume_from=file)
    finally: resume.resume_batches = after  # type: ignore[assignment]
    del t
    gc.collect()  # the stopped pass's workers end here, not in the next loader's forked workers
    return first.at - start


def hand_first_batch(kind: str, n: int) -> float:
    """A hand-written loop's time from its start to its first trained batch, on the same loader."""
    SLEEP["on"] = True
    set_seed(0)
    dl, m = loader(kind, n), model()
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    start = time.perf_counter()
    for xb, yb in dl:
        nn.functional.cross_entropy(m(xb), yb).backward()
        opt.step()
        opt.zero_grad()
        break
    took = time.perf_counter() - start
    del dl
    gc.collect()
    return took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--positions", type=int, nargs="+", default=[10, 1000, 3000])
    ap.add_argument("--log", default=str(Path(__file__).parent / "logs" / "resume_bench.log"))
    a = ap.parse_args()
    import logging
    logging.getLogger("AIsaac").setLevel(logging.WARNING)  # the replay's message, once per resume
    torch.set_num_threads(1)  # the workers take the other cores: torch's threads would spin against them
    n = BS * (max(a.positions) + 10)
    load = os.getloadavg()[0]
    lines = [f"# torch {torch.__version__}, {torch.get_num_threads()} thread, {os.cpu_count()} cores (load average "
             f"{load:.1f} at the start: a shared machine); a batch of {BS} costs {DELAY * 1e3:.1f} "
             f"ms to load (plus a random augmentation); median of {a.reps}; seconds from fit(resume_from=...) to the "
             f"first trained batch, and ratios to a hand-written loop's time to its first trained batch",
             "| loader | position | hand loop s | before (replay) s | after s | before / hand | after / hand |",
             "|---|---|---|---|---|---|---|"]
    print("\n".join(lines), flush=True)
    for kind, name in (("map", "map-style, 2 workers"), ("stream", "stream with a state")):
        with tempfile.TemporaryDirectory() as folder:
            files = checkpoints(kind, n, a.positions, Path(folder))
            gc.collect()  # that fit's workers end here, not in the next loader's forked workers
            hand = statistics.median(hand_first_batch(kind, n) for _ in range(a.reps))
            for p in a.positions:
                before = statistics.median(resume_time(kind, n, files[p], True) for _ in range(a.reps))
                after = statistics.median(resume_time(kind, n, files[p], False) for _ in range(a.reps))
                line = (f"| {name} | {p:,} | {hand:.3f} | {before:.3f} | {after:.3f} | {before / hand:.1f} | "
                        f"{after / hand:.2f} |")
                lines.append(line)
                print(line, flush=True)
    Path(a.log).parent.mkdir(parents=True, exist_ok=True)
    Path(a.log).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
