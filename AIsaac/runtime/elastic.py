"""Elastic resume: a mid-epoch checkpoint of N processes continued on M, each remaining sample of the interrupted epoch
trained on once.

The interrupted epoch's order is recomputed from the loader RNG state its shuffle began with (`position.loader_rng`):
its global batches are the train loader's batch sampler's. N processes under Accelerate (BatchSamplerShard, whole
batches) train on global batches p, p+N, ..., so after k batches each the first N*k global batches are consumed. The
rest, in the epoch's order, is dealt out to the M processes in rounds of M*batch_size samples, process p taking the
p-th batch_size of each round; what is left for the last round is split evenly (sizes differ by at most one; fewer
samples than processes share the round before), so every process runs as many batches and no sample is repeated,
unless fewer samples than processes are left in all (or batch_size is 1): a process without one then repeats one
of the first remaining samples (a warning says how many). That epoch's batches are loaded by a loader over these
indices; later epochs use the normal loaders.

A checkpoint written during such an epoch records how its batches were dealt (`loader_rng["dealt"]`: [processes,
batch at which that dealing ended] for each earlier part), so it resumes on any number of processes too.
"""
from __future__ import annotations

import contextlib
import warnings
from typing import Any, Iterable, Iterator

import torch
from torch.utils.data import DistributedSampler, IterableDataset

from ..exceptions import CheckpointError
from .rng import loads_ahead, set_rng_state

DEALT = "dealt"  # the key in an elastic epoch's loader_rng


def is_elastic(loader_rng: dict | None, saved: int, now: int) -> bool:
    """Whether a mid-epoch resume by `now` processes of a checkpoint of `saved` ones is elastic (see the module)."""
    return saved != now or bool((loader_rng or {}).get(DEALT))


def _shard(dl: Any) -> Any:
    """Accelerate's BatchSamplerShard inside `dl`, or None."""
    sampler = getattr(dl, "batch_sampler", None)
    return sampler if hasattr(sampler, "num_processes") and hasattr(sampler, "batch_sampler") else None


def batch_sampler(dl: Any) -> Any:
    """The train loader's own batch sampler (inside Accelerate's shard): it decides the epoch's global batches."""
    shard = _shard(dl)
    return shard.batch_sampler if shard is not None else getattr(dl, "batch_sampler", None)


def unsupported(dl: Any, now: int) -> str | None:
    """Why `dl`'s interrupted epoch cannot be dealt out again on `now` processes; None when it can."""
    if isinstance(getattr(dl, "dataset", None), IterableDataset):
        return "the train loader streams an IterableDataset, whose order cannot be recomputed"
    if type(dl).__name__ == "DataLoaderDispatcher":
        return "Accelerate dispatches the train loader's batches from process 0 (dispatch_batches)"
    shard = _shard(dl)
    if shard is not None and shard.split_batches:
        return "Accelerate splits each batch among the processes (split_batches); elastic resume deals whole batches"
    if now > 1 and not loads_ahead(dl):
        return "Accelerate did not prepare the train loader, so this fit's processes would not share out its batches"
    inner = batch_sampler(dl)
    if not isinstance(getattr(inner, "batch_size", None), int) or getattr(inner, "sampler", None) is None:
        return "the train loader's batch sampler has no fixed batch_size and sampler"
    if isinstance(inner.sampler, DistributedSampler):
        return "the train loader's DistributedSampler shards the data itself"
    return None


def _distinct(gens: Iterable[Any]) -> list[torch.Generator]:
    out: list[torch.Generator] = []
    for g in gens:
        if isinstance(g, torch.Generator) and all(g is not o for o in out): out.append(g)
    return out


@contextlib.contextmanager
def _generators_as_saved(dl: Any, sampler: Any, n_saved: int) -> Iterator[list[torch.Generator]]:
    """The loader's and the sampler's generators, shaped like the saving run's `n_saved`: Accelerate gives a sampler
    without one a generator on several processes only, so one is lent or taken away for the recompute."""
    own = getattr(sampler, "generator", None)
    base = getattr(dl, "generator", None)
    gens = _distinct((base, own))
    lent = own is None and hasattr(sampler, "generator") and n_saved == len(gens) + 1
    taken = own is not None and own is not base and n_saved == len(gens) - 1
    if lent: sampler.generator = torch.Generator()
    if taken: sampler.generator = None
    try:
        gens = _distinct((base, sampler.generator if hasattr(sampler, "generator") else None))
        if len(gens) != n_saved:
            raise CheckpointError(f"The train loader draws from {len(gens)} torch.Generator(s) but the checkpoint "
                                  f"recorded {n_saved}; resume with the loader built the way it was when saving.")
        yield gens
    finally:
        if lent or taken: sampler.generator = own


def epoch_batches(dl: Any, loader_rng: dict[str, Any]) -> list[list[int]]:
    """The global batches of the epoch whose shuffle began at `loader_rng` (see `rng.loader_rng_state`), as the
    loader drew them; the loader's generators are left as that epoch left them, so later epochs shuffle alike."""
    inner = batch_sampler(dl)
    set_rng_state(loader_rng["global"])
    with _generators_as_saved(dl, inner.sampler, len(loader_rng["generators"])) as gens:
        for g, s in zip(gens, loader_rng["generators"]): g.set_state(s)
        # A DataLoader's iterator draws its workers' base seed before the sampler's first draw: drawn here too.
        torch.empty((), dtype=torch.int64).random_(generator=getattr(dl, "generator", None))
        return [list(map(int, b)) for b in inner]


def segments(dealt: list[list[int]]) -> list[tuple[int, int]]:
    """(processes, batches each) of each part of the epoch, from `dealt`'s [processes, batch it ended at] pairs."""
    out, start = [], 0
    for processes, until in dealt:
        out.append((processes, until - start))
        start = until
    return out


def remaining(batches: list[list[int]], parts: list[tuple[int, int]], batch_size: int,
              drop_last: bool = False) -> list[int]:
    """The samples of the epoch's global `batches` not yet trained on after `parts` (see `segments`), in order: the
    first part dealt by Accelerate (global batches p, p+N, ... to process p; N=1: the loader itself), the later ones
    by `deal`."""
    (n, k), *later = parts
    end = n * (len(batches) // n) if drop_last else len(batches)  # a shard that drops the last batches drops a round
    rest = [i for b in batches[n * k:end] for i in b]
    for m, j in later:  # `deal`'s rounds take the samples in order
        rest = rest[sum(map(sum, _round_sizes(len(rest), m, batch_size)[:j])):]
    return rest


def _round_sizes(n: int, processes: int, batch_size: int) -> list[list[int]]:
    """Each round's batch size per process for dealing `n` samples: full rounds of `batch_size`, the rest split
    evenly; a rest of fewer samples than processes shares the round before. 0: a process left without a sample."""
    per_round = processes * batch_size
    full, left = divmod(n, per_round)
    rounds = [[batch_size] * processes for _ in range(full)]
    if not left: return rounds
    shared = bool(full) and left < processes
    if shared: rounds.pop()
    k = 2 if shared else 1
    size, extra = divmod(left + (per_round if shared else 0), k * processes)
    sizes = [size + (i < extra) for i in range(k * processes)]
    return rounds + [sizes[i * processes:(i + 1) * processes] for i in range(k)]


def deal(indices: list[int], processes: int, batch_size: int) -> list[list[list[int]]]:
    """Each process's batches of `indices`, round by round (see `_round_sizes`), every process as many; a process
    left without a sample (fewer samples than processes, or batch_size 1) repeats one of the first (a warning)."""
    out: list[list[list[int]]] = [[] for _ in range(processes)]
    start = pad = 0
    for sizes in _round_sizes(len(indices), processes, batch_size):
        for p, n in enumerate(sizes):
            if n: out[p].append(indices[start:start + n])
            else:  # a process without a batch would leave the others waiting at its step
                out[p].append([indices[pad % len(indices)]])
                pad += 1
            start += n
    if pad:
        warnings.warn(f"Elastic resume: too few samples left for every one of {processes} processes to have one in "
                      f"the last batch; {pad} process(es) repeat one of the first remaining samples.", RuntimeWarning,
                      stacklevel=2)
    return out


def loader_over(dl: Any, batches: Any) -> Any:
    """A loader like `dl` (dataset, collate, workers; Accelerate's device placement) over the batches given."""
    base = getattr(dl, "base_dataloader", dl)
    workers = base.num_workers
    kwargs = dict(num_workers=workers, collate_fn=base.collate_fn, pin_memory=base.pin_memory, timeout=base.timeout,
                  worker_init_fn=base.worker_init_fn, multiprocessing_context=base.multiprocessing_context,
                  prefetch_factor=base.prefetch_factor if workers else None)
    if loads_ahead(dl):  # Accelerate's DataLoaderShard: batches on this process's device, as the prepared one puts them
        return type(dl)(base.dataset, device=dl.device, batch_sampler=batches, _non_blocking=dl._non_blocking,
                        **kwargs)
    return torch.utils.data.DataLoader(base.dataset, batch_sampler=batches, **kwargs)


def elastic_batches(dl: Any, resume: dict[str, Any]) -> Iterable[tuple[int, Any]]:
    """The interrupted epoch's remaining batches for this process (`resume["elastic"]`: processes, index), numbered
    on from the checkpoint's batch, the RNGs then as `resume["rng"]`."""
    me = resume["elastic"]
    inner = batch_sampler(dl)
    loader_rng = resume["loader_rng"]
    rest = remaining(epoch_batches(dl, loader_rng), segments(loader_rng[DEALT]), inner.batch_size,
                     bool(getattr(inner, "drop_last", False)))
    mine = deal(rest, me["processes"], inner.batch_size)[me["index"]]
    set_rng_state(resume["rng"])
    if not mine: return enumerate(())
    return enumerate(loader_over(dl, mine), resume["batch"])

