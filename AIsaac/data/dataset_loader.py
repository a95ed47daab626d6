"""`DatasetLoader`: a torch `DataLoader` whose worker processes live across passes yet seed and shuffle as fresh ones
would, and whose main process leaves the workers their cores while they decode; `loading_plan`, the worker and
thread counts it is given on this machine."""
from __future__ import annotations

import os
import random
from typing import Any, Callable, Iterator

import torch
from torch.utils.data import get_worker_info

from ..runtime.loader_seeding import SeededDataLoader, SeededIndices, seeded_in_worker


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask, which containers and `taskset` narrow), shared
    among the processes of one multi-process launch on this machine (`LOCAL_WORLD_SIZE`)."""
    try: cores = len(os.sched_getaffinity(0))
    except AttributeError: cores = os.cpu_count() or 1  # macOS and Windows have no affinity mask
    return max(1, cores // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)))


def loading_plan(num_workers: int, cores: int | None = None) -> tuple[int, int | None]:
    """`(workers, main_threads)` for `num_workers` asked on `cores` (default: `usable_cores()`).

    One core stays with the model: at most `cores - 1` workers (none on a single core, where a worker would only take
    turns with the model). While they decode, the main process runs on the cores they leave, `cores - workers`
    threads, where torch's default would make a thread per core compete with the workers (None: no workers, torch's
    thread count stays).
    """
    cores = usable_cores() if cores is None else cores
    workers = max(0, min(num_workers, cores - 1))
    return workers, (max(1, cores - workers) if workers else None)


class _PassIndices(list):
    """One batch's indices on their way to a worker process, tagged with the pass they belong to (and, as
    `SeededIndices`, with the batch's seed)."""

    def __init__(self, indices: list, token: tuple[int, int]):
        super().__init__(indices)
        self.token = token
        self.seeded = (indices.seed, indices.batch) if isinstance(indices, SeededIndices) else None

    def __reduce__(self): return _indices_in_worker, (list(self), self.token, self.seeded)


_seeded_for: tuple[int, int] | None = None  # in a worker process: the pass its RNGs were seeded for (None: its first)
_init_fn: Callable[[int], Any] | None = None  # in a worker process: the user's worker_init_fn


def _indices_in_worker(indices: list, token: tuple[int, int], seeded: tuple[int, int] | None = None) -> list:
    """Unpickled in a worker: the first batch of a new pass reseeds the worker as torch seeds a fresh one (the
    pass's base seed plus the worker's id, for `random`, torch and NumPy; then `worker_init_fn`), so that
    `worker_init_fn` and the worker's info see what they would with workers started anew each pass; then the batch's
    own seed (`seeded`: the pass's seed and the batch's index, see runtime.loader_seeding) seeds the draws."""
    global _seeded_for
    if token != _seeded_for:
        _seeded_for = token
        info = get_worker_info()
        if info is not None: _reseed_worker(info, token[1])
    return indices if seeded is None else seeded_in_worker(indices, *seeded)


def _reseed_worker(info: Any, base_seed: int) -> None:
    """What torch's `_worker_loop` does before its first fetch (torch/utils/data/_utils/worker.py)."""
    import numpy as np
    from torch.utils.data._utils import worker
    seed = base_seed + info.id
    random.seed(seed)
    torch.manual_seed(seed)
    np.random.seed(worker._generate_state(base_seed, info.id))
    worker._worker_info = worker.WorkerInfo(id=info.id, num_workers=info.num_workers, seed=seed, dataset=info.dataset)
    if _init_fn is not None: _init_fn(info.id)


class _InitAgain:
    """The user's `worker_init_fn`, kept in the worker so that each new pass can run it again after reseeding."""

    def __init__(self, fn: Callable[[int], Any]): self.fn = fn

    def __call__(self, worker_id: int) -> None:
        global _init_fn
        _init_fn = self.fn
        self.fn(worker_id)


class _PassBatches:
    """The batch sampler, its index lists tagged with the loader's current pass (read when a pass begins)."""

    def __init__(self, batches: Any, loader: "DatasetLoader"): self.batches, self.loader = batches, loader

    def __len__(self) -> int: return len(self.batches)

    def __iter__(self) -> Iterator[list]:
        token = self.loader._pass
        if token is None: yield from self.batches  # the workers' first pass: torch seeded them for it
        else:
            for b in self.batches: yield _PassIndices(b, token)


class DatasetLoader(SeededDataLoader):
    """A `torch.utils.data.DataLoader` (every argument as there) that, with workers, keeps them across passes
    (epochs, and fits on the same loaders), seeds them per batch, and runs the main process on `main_threads`
    threads during a pass.

    A reused worker costs nothing to start, yet everything comes out as with fresh workers each pass: each pass
    draws the workers' base seed from torch's RNG as a new iterator does (so the shuffle, and every later draw,
    follow the same seed), and each worker reseeds from it at the pass's first batch (`worker_init_fn` runs again
    then). Random transforms in the workers draw from each batch's own seed (see runtime.loader_seeding), so a
    resumed fit loads any batch as the uninterrupted one did. The workers hold the dataset as it was when they
    started: build new loaders after changing its transform in place. `main_threads=None` leaves torch's thread
    count alone.
    """

    def __init__(self, dataset: Any, *args: Any, main_threads: int | None = None, **kwargs: Any):
        if kwargs.get("num_workers", 0) > 0: kwargs.setdefault("persistent_workers", True)
        init_fn = kwargs.get("worker_init_fn")
        if init_fn is not None: kwargs["worker_init_fn"] = _InitAgain(init_fn)
        super().__init__(dataset, *args, **kwargs)
        self.main_threads = main_threads
        self._pass: tuple[int, int] | None = None

    @property
    def _reuses_workers(self) -> bool: return self.persistent_workers and self.num_workers > 0

    @property
    def _index_sampler(self):
        sampler = super()._index_sampler
        return _PassBatches(sampler, self) if self._reuses_workers and self._auto_collation else sampler

    def _new_pass(self) -> int | None:
        seed = super()._new_pass()  # drawn for reused workers
        if self._reuses_workers:
            self._pass = None if seed is None else ((self._pass[0] + 1) if self._pass else 1, seed)
        return seed

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        it = super().__iter__()
        threads = self.main_threads
        if not threads or threads == torch.get_num_threads(): return it
        return _on_threads(it, threads)


def _on_threads(it: Iterator[Any], threads: int) -> Iterator[Any]:
    """`it`, with torch on `threads` threads until it ends (or is dropped), then back to the count it had."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try: yield from it
    finally: torch.set_num_threads(before)
