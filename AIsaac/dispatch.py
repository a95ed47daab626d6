"""`with_cbs`, `run_callbacks` and the dispatch plan: per event, the callbacks' bound methods in order."""
from __future__ import annotations

import functools
import warnings
from typing import Any, Callable, Iterable

from .callback import callback_name, callback_order, event_methods, flatten_callbacks
from .events import EVENTS, EXCLUSIVE_PHASES
from .exceptions import CallbackSetupError


class with_cbs:
    """Decorator: run `before_{nm}`, the function, `after_{nm}`; `exception` skips the rest; `cleanup_{nm}` always runs.

    Every callback's `cleanup_{nm}` runs even when one of them raises (`o.run_cleanup`); an error already on its way
    out is the one that propagates, with the cleanup errors attached to it as notes.
    """

    def __init__(self, nm: str, exception: type[BaseException]):
        self.nm, self.exception = nm, exception
        # Built once here, not on every call.
        self.before, self.after, self.cleanup = f"before_{nm}", f"after_{nm}", f"cleanup_{nm}"

    def __call__(self, f: Callable) -> Callable:
        @functools.wraps(f)
        def _f(o, *args, **kwargs):
            try:
                try:
                    o.run_callbacks(self.before)
                    f(o, *args, **kwargs)
                    o.run_callbacks(self.after)
                except self.exception: pass
            except BaseException as e:
                _cleanup(o, self.cleanup, e)
                raise
            _cleanup(o, self.cleanup, None)
        return _f


def _cleanup(o: Any, name: str, pending: BaseException | None) -> None:
    # A Trainer runs every cleanup (run_cleanup); any other object with run_callbacks is served by that.
    run = getattr(o, "run_cleanup", None)
    if run is not None: run(name, pending)
    else: o.run_callbacks(name)


def run_callbacks(callbacks: Iterable[Any], event: str | Iterable[str], trainer: Any = None) -> None:
    """Run `event` (or each of several events) on `callbacks` sorted by `order`, passing `trainer`.

    The one-off form, for use outside a `Trainer`; a trainer runs from its prepared plan instead.
    """
    events = (event,) if isinstance(event, str) else tuple(event)
    cbs = flatten_callbacks(callbacks)
    for ev in events:
        for cb in sorted(cbs, key=lambda c: callback_order(c, ev)):
            method = event_methods(cb, ev)
            if method is not None: method(trainer)


def build_plan(callbacks: list[Any], events: tuple[str, ...] = EVENTS) -> dict[str, tuple[Callable, ...]]:
    """Per event, the tuple of bound methods to call, sorted by `order` (stable; `event_orders` where given), claims
    applied.

    When one callback `claims` a phase only it runs there; two claims on one phase raise CallbackSetupError. Callbacks
    that list the phase in `observes` (a tracer beside the training step, say) run beside the one doing it; those that
    list it in `yields` are left out when another callback does it; two callbacks doing a phase with neither claiming,
    observing nor yielding it get a warning (it runs twice).
    """
    plan = {}
    for ev in events:
        ordered = sorted(callbacks, key=lambda cb: callback_order(cb, ev))  # stable: ties keep the order added
        doers = [(cb, m) for cb in ordered if (m := event_methods(cb, ev)) is not None]
        if ev in EXCLUSIVE_PHASES:
            claimers = [cb for cb, _ in doers if ev in getattr(cb, "claims", ())]
            if len(claimers) > 1:
                raise CallbackSetupError(f"{' and '.join(map(callback_name, claimers))} both claim the step phase "
                                         f"'{ev}'; keep only one of them.")
            # A claim takes the phase over: the other callbacks' methods for it are left out of the plan.
            if claimers:
                doers = [(cb, m) for cb, m in doers if cb is claimers[0] or ev in getattr(cb, "observes", ())]
            else:
                doing = [cb for cb, _ in doers if ev not in getattr(cb, "observes", ())]
                # A callback that yields the phase does it only when no other callback does.
                others = [cb for cb in doing if ev not in getattr(cb, "yields", ())]
                if others and len(others) < len(doing):
                    gone = {id(cb) for cb in doing} - {id(cb) for cb in others}
                    doers, doing = [(cb, m) for cb, m in doers if id(cb) not in gone], others
                if len(doing) > 1:
                    # A warning, not an error: a tracer written before `observes` existed (the seed tutorial's) still runs.
                    warnings.warn(
                        f"{' and '.join(map(callback_name, doing))} all do the step phase '{ev}', so it runs "
                        f"{len(doing)} times per batch. Give the one that replaces the usual step claims = ('{ev}',), "
                        f"or, for one that only watches it (a recorder), observes = ('{ev}',).", UserWarning,
                        stacklevel=4)
        plan[ev] = tuple(m for _, m in doers)
    return plan
