"""Per-batch seeds for a DataLoader's worker processes, so that any batch of a pass can be loaded alone, exactly.

A worker's random transform draws from the worker's generators (torch, NumPy, `random`), whose state depends on every
batch that worker loaded before: to resume at batch k without loading batches 0..k-1, a batch's draws must not depend
on them. As Google's Grain seeds each record, each batch's indices travel to their worker tagged with the pass's seed
and the batch's index, and the worker seeds its three generators from them just before it loads the batch (the tag is
read as the indices are unpickled there: nothing is done per batch in the main process but the tagging).

The pass's seed is read, not drawn, from the random state the pass's shuffle begins with (torch's and the loader's own
generators, just after a new iterator has drawn its workers' base seed): a function of the run's seed and of
everything drawn before the pass, so each epoch (and each fit) has its own, and a resumed run, whose loader RNG state
is restored from the checkpoint, reads the same one. Without workers nothing is tagged: the batches are loaded in
the main process, whose generators a resume restores.
"""
from __future__ import annotations

import hashlib
import random
import weakref
from typing import Any, Iterable, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset

from .rng import loader_generators


def pass_seed(generators: Iterable[torch.Generator] = ()) -> int:
    """A 64-bit seed read from the states of torch's global generator and of `generators`; draws nothing."""
    h = hashlib.blake2b(torch.get_rng_state().numpy().tobytes(), digest_size=8)
    for g in generators: h.update(g.get_state().numpy().tobytes())
    return int.from_bytes(h.digest(), "little")


def batch_seed(seed: int, index: int) -> int:
    """The seed of batch `index` of the pass seeded `seed` (63 bits: any generator takes it)."""
    return int.from_bytes(hashlib.blake2b(f"{seed}:{index}".encode(), digest_size=8).digest(), "little") >> 1


def seed_generators(seed: int) -> None:
    """Seed `random`, NumPy's global generator and torch's from one 63-bit `seed`."""
    random.seed(seed)
    np.random.seed([seed & 0xFFFFFFFF, seed >> 32])
    torch.manual_seed(seed)


class SeededIndices(list):
    """One batch's indices on their way to a worker process, with the pass's seed and the batch's index."""

    def __init__(self, indices: Iterable[Any], seed: int, batch: int):
        super().__init__(indices)
        self.seed, self.batch = seed, batch

    def __reduce__(self): return seeded_in_worker, (list(self), self.seed, self.batch)


def seeded_in_worker(indices: list, seed: int, batch: int) -> list:
    """Unpickled in the worker that loads the batch, right before it does: seeds its generators for that batch."""
    seed_generators(batch_seed(seed, batch))
    return indices


class SeededBatches:
    """A batch sampler's batches as `SeededIndices`: numbered from 0 in each pass, whose seed `pass_seed` reads (from
    torch's generator and `generators`, those of the loader) when the pass begins."""

    def __init__(self, batches: Any, generators: Iterable[torch.Generator] = ()):
        self.batches, self.generators = batches, list(generators)

    def __len__(self) -> int: return len(self.batches)

    def __iter__(self) -> Iterator[SeededIndices]:
        seed = pass_seed(self.generators)  # before the batch sampler's own first draw (its shuffle)
        for i, b in enumerate(self.batches): yield SeededIndices(b, seed, i)


def seeds_batches(dl: Any) -> bool:
    """Whether `dl` is a DataLoader whose batches this module can seed: map-style data, batches from a batch sampler,
    worker processes."""
    return (isinstance(dl, DataLoader) and dl.num_workers > 0 and dl.batch_sampler is not None
            and not isinstance(dl.dataset, IterableDataset))


def seeded_batches(dl: Any) -> Any:
    """`dl`'s batch sampler, as `SeededBatches` where its workers seed per batch (`seeds_batches`)."""
    return SeededBatches(dl.batch_sampler, loader_generators(dl)) if seeds_batches(dl) else dl.batch_sampler


class SeededDataLoader(DataLoader):
    """A `torch.utils.data.DataLoader` (every argument as there) whose workers seed per batch (see the module).

    With persistent workers each pass draws its workers' base seed, as a new iterator does (torch's reused iterator
    draws none): the pass's shuffle then draws alike whether the workers are new (a resumed run) or reused.
    """

    @property
    def _index_sampler(self):
        return seeded_batches(self) if self._auto_collation else super()._index_sampler

    def __iter__(self):
        self._new_pass()
        return super().__iter__()

    def _new_pass(self) -> int | None:
        """Draw the pass's base seed where torch's iterator would not (reused workers); the seed drawn, or None."""
        if not (self.persistent_workers and self.num_workers > 0 and self._iterator is not None): return None
        # The draw a new iterator makes for its workers' base seed (DataLoader._BaseDataLoaderIter.__init__)
        return int(torch.empty((), dtype=torch.int64).random_(generator=self.generator).item())


_rebuilt: "weakref.WeakKeyDictionary[DataLoader, SeededDataLoader]" = weakref.WeakKeyDictionary()


def seeded_loader(dl: Any) -> Any:
    """The loader a fit iterates for its train loader `dl`: `dl` itself, unless it is a plain `DataLoader` whose
    batches need seeds (`seeds_batches`); that one is rebuilt once, with the same arguments and the same batch
    sampler, as a `SeededDataLoader` (as Accelerate and Lightning rebuild a user's loaders)."""
    if type(dl) is not DataLoader or not seeds_batches(dl): return dl
    if (seeded := _rebuilt.get(dl)) is None:
        kwargs: dict[str, Any] = dict(
            batch_sampler=dl.batch_sampler, num_workers=dl.num_workers, collate_fn=dl.collate_fn,
            pin_memory=dl.pin_memory, timeout=dl.timeout, worker_init_fn=dl.worker_init_fn,
            multiprocessing_context=dl.multiprocessing_context, generator=dl.generator,
            prefetch_factor=dl.prefetch_factor, persistent_workers=dl.persistent_workers)
        if getattr(dl, "pin_memory_device", ""): kwargs["pin_memory_device"] = dl.pin_memory_device
        if hasattr(dl, "in_order"): kwargs["in_order"] = dl.in_order
        seeded = _rebuilt[dl] = SeededDataLoader(dl.dataset, **kwargs)
    return seeded
