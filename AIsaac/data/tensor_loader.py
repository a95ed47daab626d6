"""`TensorLoader`: batches drawn by index from tensors held in memory (on the CPU or on the device)."""
from __future__ import annotations

from typing import Any, Iterator

import numpy as np
import torch

from ..runtime.args import whole_number


def as_tensor(x: Any) -> torch.Tensor:
    """`x` (a tensor, a NumPy array, a list of same-shaped tensors, or a list of numbers) as one tensor."""
    if isinstance(x, torch.Tensor): return x
    if isinstance(x, np.ndarray): return torch.from_numpy(np.ascontiguousarray(x))
    if isinstance(x, (list, tuple)) and x and isinstance(x[0], torch.Tensor): return torch.stack(list(x))
    return torch.as_tensor(np.asarray(x))


class TensorLoader:
    """Yields tuples `(t[idx] for t in tensors)`, one gather per batch, instead of collating items one by one.

    Use it for data that fits in memory; `.to(device)` keeps it resident on the GPU so batches never cross the bus.
    With `shuffle`, each epoch's order comes from a `torch.Generator` seeded from torch's global RNG when the epoch
    starts (so `set_seed` makes runs repeat), or from `generator` when one is given. `drop_last` leaves out a last
    batch smaller than `batch_size` (CUDA graphs need every batch the same shape).
    """

    def __init__(self, *tensors: Any, batch_size: int = 64, shuffle: bool = False, drop_last: bool = False,
                 generator: torch.Generator | None = None):
        if not tensors: raise ValueError("TensorLoader needs at least one tensor, e.g. TensorLoader(x, y, batch_size=64).")
        batch_size = whole_number("batch_size", batch_size, owner="TensorLoader", what="rows per batch")
        self.tensors = tuple(as_tensor(t) for t in tensors)
        lengths = [len(t) for t in self.tensors]
        if len(set(lengths)) != 1:
            raise ValueError(f"TensorLoader's tensors must have the same length (first dimension); got {lengths}.")
        devices = {t.device for t in self.tensors}
        if len(devices) != 1: raise ValueError(f"TensorLoader's tensors must be on one device; got {sorted(map(str, devices))}.")
        self.n, self.batch_size, self.shuffle, self.drop_last, self.generator = lengths[0], batch_size, shuffle, drop_last, generator

    @property
    def device(self) -> torch.device: return self.tensors[0].device

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "TensorLoader":
        """A loader with the same settings whose tensors are on `device`."""
        return TensorLoader(*(t.to(device, non_blocking=non_blocking) for t in self.tensors), batch_size=self.batch_size,
                            shuffle=self.shuffle, drop_last=self.drop_last, generator=self.generator)

    def __len__(self) -> int:
        return self.n // self.batch_size if self.drop_last else -(-self.n // self.batch_size)

    def order(self) -> torch.Tensor:
        """This epoch's sample order (a permutation of range(n) on the CPU); draws from the RNG when shuffling."""
        if not self.shuffle: return torch.arange(self.n)
        gen = self.generator
        if gen is None:  # one draw from the global RNG per epoch, as torch's RandomSampler does
            gen = torch.Generator().manual_seed(int(torch.empty((), dtype=torch.int64).random_().item()))
        return torch.randperm(self.n, generator=gen)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        return self._batches(0)  # the order is drawn at the first batch

    def iter_from(self, start: int) -> Iterator[tuple[torch.Tensor, ...]]:
        """The pass's batches from batch `start` on: the order is drawn now, and the batches before `start` are not
        gathered (how a resumed fit skips them)."""
        return self._batches(start * self.batch_size, self._device_order())

    def _device_order(self) -> torch.Tensor | None:
        # One host-to-device copy of the order per epoch; each batch is then one gather per tensor on its device.
        return self.order().to(self.device, non_blocking=True) if self.shuffle else None

    def _batches(self, first: int, idx: Any = "draw") -> Iterator[tuple[torch.Tensor, ...]]:
        """The batches from row `first` on, in the order `idx` ("draw": drawn at the first batch; None: in order)."""
        if isinstance(idx, str): idx = self._device_order()
        tensors, bs, stop = self.tensors, self.batch_size, min(len(self) * self.batch_size, self.n)
        if idx is None:  # slices are views: no copy at all
            for i in range(first, stop, bs): yield tuple(t[i:i + bs] for t in tensors)
            return
        for i in range(first, stop, bs):
            b = idx[i:i + bs]
            yield tuple(t.index_select(0, b) for t in tensors)

    def __repr__(self) -> str:
        shapes = ", ".join(f"{tuple(t.shape)}" for t in self.tensors)
        return (f"TensorLoader({shapes}, batch_size={self.batch_size}, shuffle={self.shuffle}, "
                f"drop_last={self.drop_last}, device={self.device})")
