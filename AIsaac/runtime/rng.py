"""`set_seed`, and capturing and restoring the random number generators a fit draws from.

The states are lists, numbers and tensors only, so a checkpoint holding them loads with `torch.load(weights_only=True)`.
"""
from __future__ import annotations

import os
import random
import sys
from typing import Any

import numpy as np
import torch


def get_rng_state() -> dict[str, Any]:
    """The states of Python's `random`, NumPy's global generator, torch's CPU generator and (once used) every GPU's."""
    version, internal, gauss_next = random.getstate()
    kind, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    state = {"python": [version, list(internal), gauss_next],
             "numpy": [kind, torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos), int(has_gauss),
                       float(cached_gaussian)],
             "torch": torch.get_rng_state()}
    # Only when CUDA is already in use: reading its state would otherwise start a CUDA context for nothing.
    if torch.cuda.is_available() and torch.cuda.is_initialized(): state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore states from `get_rng_state`; GPU states are restored for the GPUs present (none on a CPU machine)."""
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    kind, keys, pos, has_gauss, cached_gaussian = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached_gaussian))
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda")
    if cuda and torch.cuda.is_available():
        for i, s in enumerate(cuda[:torch.cuda.device_count()]): torch.cuda.set_rng_state(s, i)


def loader_generators(dl: Any) -> list[torch.Generator]:
    """The explicit `torch.Generator`s a DataLoader shuffles and seeds its workers with (often none: then torch's
    global generator is used)."""
    batch_sampler = getattr(dl, "batch_sampler", None)
    candidates = (getattr(dl, "generator", None), getattr(getattr(dl, "sampler", None), "generator", None),
                  getattr(getattr(batch_sampler, "sampler", None), "generator", None),
                  # Accelerate's prepared loaders of several processes: a generator they synchronise at each pass,
                  # that of the sampler inside their BatchSamplerShard
                  getattr(dl, "synchronized_generator", None),
                  getattr(getattr(getattr(batch_sampler, "batch_sampler", None), "sampler", None), "generator", None))
    out: list[torch.Generator] = []
    for g in candidates:
        if isinstance(g, torch.Generator) and all(g is not o for o in out): out.append(g)
    return out


def loads_ahead(dl: Any) -> bool:
    """Whether iterating `dl` loads each batch one step ahead: Accelerate's prepared loaders fetch batch k+1 before
    they hand out batch k (to know which batch is the last), so a random transform run in this process draws for
    batch k+1 between the training steps of batches k-1 and k."""
    shard = getattr(sys.modules.get("accelerate.data_loader"), "DataLoaderShard", None)
    return shard is not None and isinstance(dl, shard)


def loader_rng_state(dl: Any) -> dict[str, Any]:
    """What decides the order (and worker seeds) of the next pass over `dl`: the global RNGs and the loader's own."""
    return {"global": get_rng_state(), "generators": [g.get_state() for g in loader_generators(dl)]}


STREAM = "stream"  # the key in a loader_rng under which a stream with a state keeps it, by position (see resume)


def loader_rng_at(loader_rng: dict[str, Any] | None, batch: int) -> dict[str, Any] | None:
    """`loader_rng` as a checkpoint `batch` batches into its epoch holds it: of a stream's states, that position's."""
    if not loader_rng or STREAM not in loader_rng: return loader_rng
    states = loader_rng[STREAM]
    return {**loader_rng, STREAM: {batch: states[batch]} if batch in states else {}}


def set_loader_rng_state(dl: Any, state: dict[str, Any]) -> None:
    """Restore a `loader_rng_state`, so that the next `iter(dl)` gives the same order as when it was taken."""
    gens = loader_generators(dl)
    if len(gens) != len(state["generators"]):
        raise ValueError(f"The train loader draws from {len(gens)} torch.Generator(s) but the checkpoint recorded "
                         f"{len(state['generators'])}; resume with the loader built the way it was when saving.")
    set_rng_state(state["global"])
    for g, s in zip(gens, state["generators"]): g.set_state(s)


def set_seed(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and torch (CPU and every GPU); `deterministic=True` also asks torch for deterministic
    kernels (deterministic algorithms, deterministic cuDNN without autotuning, cuBLAS's workspace setting).

    It only adds: what a user already set is never weakened. `deterministic=False` (the default) leaves
    `torch.use_deterministic_algorithms` and the cuDNN flags as they are, and `deterministic=True` keeps an
    already enabled `use_deterministic_algorithms(True, warn_only=...)` as the user chose it.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)
    if not deterministic: return
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    # cuBLAS needs this workspace setting before it can be deterministic (see torch's reproducibility notes).
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    if not torch.are_deterministic_algorithms_enabled(): torch.use_deterministic_algorithms(True)
