"""`with_cbs`, `run_callbacks` and the dispatch plan: per event, the callbacks' bound methods in order."""
from __future__ import annotations

import functools
from typing import Any, Callable, Iterable

from .callback import callback_name, callback_order, event_methods, flatten_callbacks
from .events import EVENTS, EXCLUSIVE_PHASES
from .exceptions import CallbackSetupError


class with_cbs:
    """Decorator: run `before_{nm}`, the function, `after_{nm}`; `exception` skips the rest; `cleanup_{nm}` always runs."""

    def __init__(self, nm: str, exception: type[BaseException]):
        self.nm, self.exception = nm, exception
        # Built once here, not on every call.
        self.before, self.after, self.cleanup = f"before_{nm}", f"after_{nm}", f"cleanup_{nm}"

    def __call__(self, f: Callable) -> Callable:
        @functools.wraps(f)
        def _f(o, *args, **kwargs):
            try:
                o.run_callbacks(self.before)
                f(o, *args, **kwargs)
                o.run_callbacks(self.after)
            except self.exception: pass
            finally: o.run_callbacks(self.cleanup)
        return _f


def run_callbacks(callbacks: Iterable[Any], event: str | Iterable[str], trainer: Any = None) -> None:
    """Run `event` (or each of several events) on `callbacks` sorted by `order`, passing `trainer`.

    The one-off form, for use outside a `Trainer`; a trainer runs from its prepared plan instead.
    """
    events = (event,) if isinstance(event, str) else tuple(event)
    ordered = sorted(flatten_callbacks(callbacks), key=callback_order)
    for ev in events:
        for cb in ordered:
            method = event_methods(cb, ev)
            if method is not None: method(trainer)


def build_plan(callbacks: list[Any], events: tuple[str, ...] = EVENTS) -> dict[str, tuple[Callable, ...]]:
    """Per event, the tuple of bound methods to call, sorted by `order` (stable), claims applied.

    Several callbacks may do the same phase (a tracer beside the training step, say); when one of them
    `claims` the phase only it runs there. Two claims on one phase raise CallbackSetupError.
    """
    ordered = sorted(callbacks, key=callback_order)
    plan = {}
    for ev in events:
        doers = [(cb, m) for cb in ordered if (m := event_methods(cb, ev)) is not None]
        if ev in EXCLUSIVE_PHASES:
            claimers = [cb for cb, _ in doers if ev in getattr(cb, "claims", ())]
            if len(claimers) > 1:
                raise CallbackSetupError(f"{' and '.join(map(callback_name, claimers))} both claim the step phase "
                                         f"'{ev}'; keep only one of them.")
            # A claim takes the phase over: the other callbacks' methods for it are left out of the plan.
            if claimers: doers = [(cb, m) for cb, m in doers if cb is claimers[0]]
        plan[ev] = tuple(m for _, m in doers)
    return plan
