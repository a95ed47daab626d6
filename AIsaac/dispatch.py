"""Dispatch: `with_cbs`, `run_callbacks`, `build_plan` (per event, the callbacks' bound methods in order), `Plan` (a
trainer's callbacks, their names and what runs at each event, rebuilt when they change), running cleanups and
wrapping a callback's error with where it happened."""
from __future__ import annotations

import functools
from typing import Any, Callable, Iterable, Mapping, NoReturn

from .callback import callback_name, callback_order, event_methods, flatten_callbacks, warn_misspelt_events
from .events import EVENTS, EXCLUSIVE_PHASES, nearest_event
from .exceptions import CANCEL_EXCEPTIONS, CallbackError, CallbackSetupError, add_note, callback_error
from .runtime.messages import warn

# (event, callback name, planned method) -> the callable to run instead; see Trainer.wrap_plan.
PlanWrapper = Callable[[str, str, Callable], Callable]


class with_cbs:
    """Decorator: run `before_{nm}`, the function, `after_{nm}`; `exception` skips the rest; `cleanup_{nm}` always runs.

    On a Trainer, the scope's end goes through `Trainer._end_scope`: `trainer.exception` is set to what ended the scope
    (the caught cancel, an error, a KeyboardInterrupt; None when it ended normally), the processes agree on it, and
    every callback's `cleanup_{nm}` runs even when one of them raises; an error already on its way out is the one
    that propagates, with the cleanup errors attached to it as notes. Any other object: `o.run_callbacks(cleanup)`.
    """

    def __init__(self, nm: str, exception: type[BaseException]):
        self.nm, self.exception = nm, exception
        # Built once here, not on every call.
        self.before, self.after, self.cleanup = f"before_{nm}", f"after_{nm}", f"cleanup_{nm}"

    def __call__(self, f: Callable) -> Callable:
        before, after, cleanup, exception = self.before, self.after, self.cleanup, self.exception

        @functools.wraps(f)
        def _f(o, *args, **kwargs):
            ended: BaseException | None = None
            try:
                try:
                    o.run_callbacks(before)
                    if args or kwargs: f(o, *args, **kwargs)
                    else: f(o)  # the loop's own calls (one_batch, one_phase): no argument tuple to unpack
                    o.run_callbacks(after)
                except exception as e: ended = e
            except BaseException as e:
                _end(o, cleanup, e)
                raise
            if ended is None: _end(o, cleanup, None)
            else:
                try: _end(o, cleanup, ended)
                finally: ended = None  # its traceback holds this frame: no reference cycle through it
        return _f


def _end(o: Any, cleanup: str, ended: BaseException | None) -> None:
    # A Trainer ends its scopes itself (Trainer._end_scope); any other object with run_callbacks is served by that.
    try: end = o._end_scope
    except AttributeError: o.run_callbacks(cleanup)
    else: end(cleanup, ended)


def run_callbacks(callbacks: Iterable[Any], event: str | Iterable[str], trainer: Any = None) -> None:
    """Run `event` (or each of several events) on `callbacks` sorted by `order`, passing `trainer`.

    The one-off form, for use outside a `Trainer`; a trainer runs from its prepared plan instead.
    """
    events = (event,) if isinstance(event, str) else tuple(event)
    cbs = sorted(flatten_callbacks(callbacks), key=callback_order)
    for ev in events:
        for cb in cbs:
            method = event_methods(cb, ev)
            if method is not None: method(trainer)


def build_plan(callbacks: list[Any], events: tuple[str, ...] = EVENTS) -> dict[str, tuple[Callable, ...]]:
    """Per event, the tuple of bound methods to call, sorted by `order` (stable: ties keep the order added), claims
    applied.

    When one callback `claims` a phase only it runs there; two claims on one phase raise CallbackSetupError. Callbacks
    that list the phase in `observes` (a tracer beside the training step, say) run beside the one doing it; those that
    list it in `yields` are left out when another callback does it; two callbacks doing a phase with neither claiming,
    observing nor yielding it get a warning (it runs twice).
    """
    plan = {}
    ordered = sorted(callbacks, key=callback_order)  # stable: ties keep the order added
    for ev in events:
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
                    warn(
                        f"{' and '.join(map(callback_name, doing))} all do the step phase '{ev}', so it runs "
                        f"{len(doing)} times per batch. Give the one that replaces the usual step claims = ('{ev}',), "
                        f"or, for one that only watches it (a recorder), observes = ('{ev}',).", UserWarning)
        plan[ev] = tuple(m for _, m in doers)
    return plan


class Plan:
    """A trainer's callbacks in the order added, the names they are reachable by, and per event the methods that run
    there (`methods`, claims applied, through `wrapper` when one is set). Immutable: a change makes a new Plan, built
    (and checked) before the trainer takes it, so a refused change leaves the trainer as it was."""

    def __init__(self, events: tuple[str, ...], cbs: tuple[Any, ...] = (), named: Mapping[str, Any] | None = None,
                 wrapper: PlanWrapper | None = None):
        self.events, self.cbs, self.named, self.wrapper = events, tuple(cbs), dict(named or {}), wrapper
        methods = build_plan(list(self.cbs), events)
        if wrapper is not None:
            names = {id(cb): n for n, cb in self.named.items()}
            methods = {ev: tuple(wrapper(ev, names.get(id(o := getattr(m, "__self__", m)), callback_name(o)), m)
                                 for m in ms) for ev, ms in methods.items()}
        self.methods: dict[str, tuple[Callable, ...]] = methods
        # What running events calls, as (event, method) pairs: for each event, and (added at first use, `calls_for`)
        # each tuple of events the loop runs together.
        self.calls: dict[Any, tuple[tuple[str, Callable], ...]] = {ev: tuple((ev, m) for m in ms)
                                                                   for ev, ms in methods.items()}
        # The cleanup events some method runs at: `with_cbs` skips the others (most batches have none).
        self.cleanups = frozenset(ev for ev, ms in methods.items() if ms and ev.startswith("cleanup_"))

    def added(self, callbacks: Any, force: bool, host: Any) -> tuple["Plan", list[Any]]:
        """The plan with `callbacks` added (groups expanded), and the callbacks actually added. A name already taken is
        an error unless `force` (then `Name_2`, ...); so is a name that would hide an attribute of `host`."""
        new = [cb for cb in flatten_callbacks(callbacks) if all(cb is not c for c in self.cbs)]
        named = dict(self.named)
        for cb in new:
            name = base = callback_name(cb)
            if name in named:
                if not force:
                    raise CallbackSetupError(f"A callback named {name} is already on this trainer; remove it first "
                                             f"(trainer.remove_callbacks(trainer.{name})) or pass force=True to add a second one.")
                n = 2
                while f"{base}_{n}" in named: n += 1
                name = f"{base}_{n}"
            # The trainer's own: its class's first (not running a property), then its instance's (the callbacks'
            # names are attributes too, but those are in `named`, seen above).
            if hasattr(type(host), name) or hasattr(host, name):
                raise CallbackSetupError(f"A callback class named {name} would hide the trainer's own `{name}`; rename the class.")
            named[name] = cb
        for cb in new: warn_misspelt_events(cb, self.events)
        return Plan(self.events, (*self.cbs, *new), named, self.wrapper), new

    def removed(self, callbacks: Any) -> "Plan":
        """The plan without `callbacks` (and, for a group, its members)."""
        gone = {id(cb) for cb in flatten_callbacks(callbacks)}
        return Plan(self.events, tuple(cb for cb in self.cbs if id(cb) not in gone),
                    {n: cb for n, cb in self.named.items() if id(cb) not in gone}, self.wrapper)

    def calls_for(self, names: str | Iterable[str]) -> tuple[tuple[str, Callable], ...]:
        """The (event, method) pairs of several events in turn, kept for the next time (one plan per callback change,
        so it holds the few event tuples the loop runs); an unknown event name is an error."""
        key = (names,) if isinstance(names, str) else tuple(names)
        for name in key:
            if name not in self.methods: unknown_event(name, self.events)
        calls = tuple(call for name in key for call in self.calls[name])
        self.calls[key] = calls
        return calls

    def wrapped(self, wrapper: PlanWrapper | None) -> "Plan":
        """The plan with every method run through `wrapper(event, callback_name, method)`; None: the methods themselves."""
        return Plan(self.events, self.cbs, self.named, wrapper)


_PASS_THROUGH = (*CANCEL_EXCEPTIONS, CallbackError)  # raised as they are: a cancel, or an error already wrapped


def raise_from_callback(trainer: Any, method: Callable, event: str, e: BaseException) -> NoReturn:
    """Raise `e`, raised by `method` at `event`: a cancel or an error already wrapped as it is, any other error wrapped
    with where it happened (`wrap_error`, the original as its cause); KeyboardInterrupt and SystemExit are never
    wrapped, but get a note saying where."""
    if isinstance(e, _PASS_THROUGH): raise e
    if isinstance(e, Exception):
        err = wrap_error(trainer, method, event, e)
        if err is e: raise e
        raise err from e
    add_note(e, f"Raised in {callback_name(getattr(method, '__self__', method))} at event '{event}' "
                f"({where(trainer, event)}).")
    raise e


def unknown_event(name: str, events: tuple[str, ...]) -> NoReturn:
    guess = nearest_event(name, events)
    raise ValueError(f"'{name}' is not an event" + (f"; did you mean '{guess}'?" if guess else "") +
                     f" Events are: {', '.join(events)}.")


def where(trainer: Any, event: str) -> str:
    """Where in the fit an event runs, for error messages: the epoch, and the batch and phase where they apply."""
    phase = "training" if trainer.training else "validation"
    if event in ("before_fit", "after_fit", "cleanup_fit"): return f"epoch {trainer.epoch}"
    if event in ("before_epoch", "after_epoch", "cleanup_epoch"): return f"epoch {trainer.epoch}, {phase}"
    return f"epoch {trainer.epoch}, batch {trainer.batch_num}, {phase}"


def wrap_error(trainer: Any, method: Callable, event: str, e: Exception) -> BaseException:
    """The error to raise for `e`, raised by `method` at `event` (see `callback_error`)."""
    return callback_error(callback_name(getattr(method, "__self__", method)), event, where(trainer, event), e)


def run_cleanup(trainer: Any, methods: Iterable[Callable], name: str, pending: BaseException | None = None) -> None:
    """Run every method of cleanup event `name`, even when some raise. Their errors are reported together: `pending`
    (the exception already leaving the scope, if it is an error) or else the first cleanup error is raised, with the
    others attached as notes."""
    errors: list[BaseException] = []
    for method in methods:
        try: method(trainer)
        except (*CANCEL_EXCEPTIONS, CallbackError) as e: errors.append(e)
        except Exception as e:
            err = wrap_error(trainer, method, name, e)
            if err is not e: err.__cause__ = e
            errors.append(err)
        except BaseException as e: errors.append(e)  # KeyboardInterrupt: still let the other cleanups run
    if not errors: return
    carrier = pending if pending is not None and not isinstance(pending, CANCEL_EXCEPTIONS) else errors[0]
    for other in errors:
        if other is not carrier: add_note(carrier, f"Also raised during '{name}': {type(other).__name__}: {other}")
    if carrier is not pending: raise carrier
