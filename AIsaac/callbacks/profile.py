"""`ProfileCB`: the time each callback spends at each event over a fit, and the host-device syncs it causes."""
from __future__ import annotations

import time
from typing import Any, Callable

import torch

from ..callback import Callback, callback_name

# Tensor methods that copy a value to the host: on an accelerator each waits for all queued work (a sync).
HOST_READS = ("item", "tolist", "cpu", "numpy", "__float__", "__int__", "__bool__", "__index__")


class HostReadCounter:
    """While active, counts calls of `HOST_READS` on tensors whose device type is in `device_types` (None: any)."""

    def __init__(self, device_types: tuple[str, ...] | None = ("cuda", "mps", "xpu")):
        self.device_types, self.count, self._saved = device_types, 0, {}

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

    order = -1000  # its before_fit first, so that the others' later events are all timed

    def __init__(self, show: bool = True, count_cpu: bool = False, sync: bool | None = None):
        self.show, self.count_cpu, self.sync_arg = show, count_cpu, sync
        self.records: dict[tuple[str, str], list] = {}
        self.seconds, self._wrapped, self._original = 0.0, None, None

    def wrap(self, trainer) -> None:
        """Replace `trainer._plan` with timed wrappers (the plan is restored at cleanup_fit)."""
        if self._wrapped is not None:
            if trainer._plan is self._wrapped: return
            self.counter.__exit__()  # the plan was rebuilt since (callbacks added): wrap the new one
        self.sync = torch.cuda.is_available() if self.sync_arg is None else self.sync_arg
        self.counter = HostReadCounter(None if self.count_cpu else ("cuda", "mps", "xpu")).__enter__()
        names = {id(cb): n for n, cb in trainer._named.items()}
        self.records, self._original = {}, trainer._plan
        plan = {}
        for event, methods in trainer._plan.items():
            wrapped = []
            for m in methods:
                owner = getattr(m, "__self__", m)
                if owner is self: wrapped.append(m); continue
                rec = self.records.setdefault((names.get(id(owner), callback_name(owner)), event), [0, 0.0, 0])
                wrapped.append(_Timed(m, owner, rec, self))
            plan[event] = tuple(wrapped)
        trainer._plan = self._wrapped = plan
        self._t0 = time.perf_counter()

    def before_fit(self, trainer): self.wrap(trainer)

    def cleanup_fit(self, trainer):
        self.seconds = time.perf_counter() - self._t0
        self.counter.__exit__()
        if trainer._plan is self._wrapped: trainer._plan = self._original
        self._wrapped = None
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
        widths = [max(len(r[i]) for r in cells) for i in range(len(head))]
        fmt = lambda r: "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
        return "\n".join([fmt(cells[0]), fmt(["-" * w for w in widths])] + [fmt(r) for r in cells[1:]] +
                         [f"fit: {self.seconds * 1e3:.1f} ms" + (" (CUDA synchronised around each call)" if self.sync else "")])
