"""`ProfileCB`: the time each callback spends at each event over a fit, and the host-device syncs it causes;
`Trainer.profile` runs a fit under it (see AIsaac.tools.profiling)."""
from __future__ import annotations

import time
from typing import Any, Callable

import torch

from ..callback import Callback, Order
from ..display.tables import text_table

# Tensor methods that copy a value to the host: on an accelerator each waits for all queued work (a sync).
HOST_READS = ("item", "tolist", "cpu", "numpy", "__float__", "__int__", "__bool__", "__index__")


class HostReadCounter:
    """While active, counts calls of `HOST_READS` on tensors whose device type is in `device_types` (None: any)."""

    def __init__(self, device_types: tuple[str, ...] | None = ("cuda", "mps", "xpu")):
        self.device_types, self.count = device_types, 0
        self._saved: dict[str, Any] = {}

    def __enter__(self) -> "HostReadCounter":
        for name in HOST_READS:
            orig = getattr(torch.Tensor, name, None)
            if orig is None: continue
            self._saved[name] = torch.Tensor.__dict__.get(name)  # None: inherited from the C base class
            setattr(torch.Tensor, name, self._counting(orig))
        return self

    def _counting(self, orig: Callable) -> Callable:
        types = self.device_types
        def counted(t, *args, **kwargs):
            if types is None or t.device.type in types: self.count += 1
            return orig(t, *args, **kwargs)
        return counted

    def __exit__(self, *exc) -> None:
        for name, saved in self._saved.items():
            if saved is None: delattr(torch.Tensor, name)
            else: setattr(torch.Tensor, name, saved)
        self._saved = {}


class _Timed:
    """A planned method that adds its run time and host reads to `record` = [calls, seconds, reads]."""

    __slots__ = ("method", "__self__", "record", "prof")

    def __init__(self, method: Callable, owner: Any, record: list, prof: "ProfileCB"):
        self.method, self.__self__, self.record, self.prof = method, owner, record, prof  # __self__: for error messages

    def __call__(self, trainer) -> None:
        prof = self.prof
        if prof.sync: torch.cuda.synchronize()  # time this callback's GPU work, not what was queued before it
        reads, t0 = prof.counter.count, time.perf_counter()
        try: self.method(trainer)
        finally:
            if prof.sync: torch.cuda.synchronize()
            r = self.record
            r[0] += 1
            r[1] += time.perf_counter() - t0
            r[2] += prof.counter.count - reads


class ProfileCB(Callback):
    '''Times every callback at every event of a fit (step phases included) and counts the host reads each makes

    While it profiles, the planned methods run through timed wrappers; on CUDA each call is synchronised before and
    after, so GPU work is charged to the callback that queued it (and the fit runs slower). A "sync" is a call of
    .item(), .tolist(), .cpu(), .numpy(), float(), int() or bool() on a tensor on an accelerator (`count_cpu` counts
    CPU tensors too, to find per-batch reads before moving to a GPU). `trainer.profile()` also times before_fit.
    '''

    order = Order.FIRST  # its before_fit first, so that the others' later events are all timed

    def __init__(self, show: bool = True, count_cpu: bool = False, sync: bool | None = None):
        self.show, self.count_cpu, self.sync_arg = show, count_cpu, sync
        self.records: dict[tuple[str, str], list] = {}
        self.seconds, self._wrapping = 0.0, False

    def wrap(self, trainer) -> None:
        """Time every planned method from now on, through `trainer.wrap_plan` (undone by `unwrap` at cleanup_fit)."""
        if self._wrapping: return
        self.sync = torch.cuda.is_available() if self.sync_arg is None else self.sync_arg
        self.counter = HostReadCounter(None if self.count_cpu else ("cuda", "mps", "xpu")).__enter__()
        self.records = {}
        trainer.wrap_plan(self._timed)  # kept when the plan is rebuilt (callbacks added during the fit)
        self._wrapping, self._t0 = True, time.perf_counter()

    def _timed(self, event: str, name: str, method: Callable) -> Callable:
        owner = getattr(method, "__self__", method)
        if owner is self: return method
        return _Timed(method, owner, self.records.setdefault((name, event), [0, 0.0, 0]), self)

    def unwrap(self, trainer) -> None:
        """Stop timing: the trainer's plan runs the callbacks' own methods again."""
        if not self._wrapping: return
        self.counter.__exit__()
        trainer.wrap_plan(None)
        self._wrapping = False

    def before_fit(self, trainer): self.wrap(trainer)

    def cleanup_fit(self, trainer):
        self.seconds = time.perf_counter() - self._t0
        self.unwrap(trainer)
        if self.show: print(self.table())

    def rows(self) -> list[tuple[str, str, int, float, float, int]]:
        """(callback, event, calls, total ms, mean us, syncs), slowest first, then the time outside the callbacks."""
        rows = [(cb, ev, n, s * 1e3, s * 1e6 / n, reads) for (cb, ev), (n, s, reads) in self.records.items() if n]
        rows.sort(key=lambda r: -r[3])
        inside = sum(r[3] for r in rows)
        rows.append(("(trainer, data loading)", "-", 1, self.seconds * 1e3 - inside, self.seconds * 1e6 - inside * 1e3, 0))
        return rows

    def table(self) -> str:
        """The profile as a text table."""
        head = ("callback", "event", "calls", "total ms", "mean us", "syncs")
        cells = [head] + [(cb, ev, str(n), f"{ms:.2f}", f"{us:.1f}", str(k)) for cb, ev, n, ms, us, k in self.rows()]
        footer = f"fit: {self.seconds * 1e3:.1f} ms" + (" (CUDA synchronised around each call)" if self.sync else "")
        return text_table(cells[0], cells[1:], right=(False, False, True, True, True, True)) + "\n" + footer
