"""`Callback`, the optional base class, and the helpers that read any object as a callback (name, order, group
members, the method it runs at an event, misspelt event names).

`Order` lives in `AIsaac.order` and the epoch-log contract in `AIsaac.records` (both re-exported here for code
written against the earlier layout); `add_callback(s)`/`remove_callback(s)` in `AIsaac.callback_functions`."""
from __future__ import annotations

import functools
import gc
import inspect
import numbers
from typing import Any, Iterable

from .events import EVENTS, EXCLUSIVE_PHASES, FOREIGN_EVENT_NAMES, nearest_event
from .exceptions import CallbackSetupError
from .order import Order
from .records import check_log_key, epoch_log_keys, final_epoch_log, is_record_key
from .runtime.messages import warn

__all__ = ["Callback", "Order", "final_epoch_log", "is_record_key", "check_log_key", "epoch_log_keys", "callback_name",
           "callback_order", "as_callback_list", "check_callback", "flatten_callbacks", "event_methods",
           "warn_misspelt_events"]

class Callback:
    """Optional base class for callbacks; plain objects with event methods work just as well.

    A callback is any object with methods named after events (`before_fit`, `predict`, `after_batch`, ...),
    each taking the trainer. `order` (default 0) sorts callbacks; ties keep the order they were added.
    A `callbacks` attribute makes the object a group: its members are added with it, recursively.
    `claims` names step phases (`predict`, `get_loss`, `backward`, `step`, `zero_grad`) that this callback
    takes over from whichever other callback would do them (a mixed-precision or accumulation step, say).
    `observes` names step phases this callback runs at beside the one callback doing them (a gradient-norm
    recorder at `step`, say); two callbacks doing one step phase with neither claiming nor observing it is an error.
    `yields` names step phases this callback does only when no other callback does them (a default step, such as
    AccelerateCB's plain one, which gives way to BasicTrainCB or any other step callback in the same fit).
    `side_runs` says whether the callback takes part in side runs, the fits that are put back afterwards (`lr_find`,
    `show_image_batch`): callbacks that write files or take decisions (checkpoints, loggers, early stopping, save-best,
    the epoch table) set it to False.
    """

    order: int = 0
    claims: tuple[str, ...] = ()
    observes: tuple[str, ...] = ()
    yields: tuple[str, ...] = ()
    side_runs: bool = True

    def __repr__(self) -> str: return f"{type(self).__name__}()"


def callback_name(cb: Any) -> str:
    """The name a callback is reachable by on the trainer: its class name."""
    return type(cb).__name__


def callback_order(cb: Any) -> float:
    """The callback's `order` (0 when it has none)."""
    return getattr(cb, "order", 0)


def _is_collection(obj: Any) -> bool:
    """A list, tuple, set, generator or other iterable of callbacks (rather than one callback, or a group)."""
    if isinstance(obj, (str, bytes, dict)) or hasattr(obj, "callbacks"): return False
    if isinstance(obj, (list, tuple, set, frozenset)) or inspect.isgenerator(obj): return True
    return hasattr(obj, "__iter__") and not any(callable(getattr(obj, ev, None)) for ev in EVENTS)


def as_callback_list(callbacks: Any) -> list[Any]:
    """`callbacks` (one callback, or any iterable of them, nested) as a flat list; sets are sorted by class name."""
    if not _is_collection(callbacks): return [callbacks]
    items = sorted(callbacks, key=callback_name) if isinstance(callbacks, (set, frozenset)) else list(callbacks)
    return [cb for item in items for cb in as_callback_list(item)]


def check_callback(cb: Any) -> None:
    """Raise CallbackSetupError for a callback that cannot run: a class, a non-numeric order, unknown claims."""
    if isinstance(cb, type):
        raise CallbackSetupError(f"{cb.__name__} is a class; pass an instance of it: {cb.__name__}() (with its "
                                 f"arguments, if it takes any).")
    order = getattr(cb, "order", 0)
    if isinstance(order, bool) or not isinstance(order, numbers.Real):
        raise CallbackSetupError(f"{callback_name(cb)}.order must be a number (use the Order constants, e.g. "
                                 f"Order.LOGGER); got {order!r}.")
    for attr in ("claims", "observes", "yields"):
        names = getattr(cb, attr, ())
        if isinstance(names, str) or not isinstance(names, (tuple, list, set, frozenset)):
            raise CallbackSetupError(f"{callback_name(cb)}.{attr} must be a tuple of step phase names, like "
                                     f"('step',); got {names!r}.")
        for name in names:
            if name not in EXCLUSIVE_PHASES:
                guess = nearest_event(name, EXCLUSIVE_PHASES)
                raise CallbackSetupError(f"{callback_name(cb)}.{attr} names '{name}', which is not a step phase" +
                                         (f"; did you mean '{guess}'?" if guess else ".") +
                                         f" The step phases are: {', '.join(EXCLUSIVE_PHASES)}.")


def flatten_callbacks(cbs: Iterable[Any]) -> list[Any]:
    """Callbacks in the order added, each group followed by its members (recursively, depth first)."""
    out, seen = [], set()

    def visit(cb: Any, path: tuple[int, ...]) -> None:
        check_callback(cb)
        if id(cb) in path: raise ValueError(f"{callback_name(cb)} contains itself through its `callbacks` attribute")
        if id(cb) in seen: return
        seen.add(id(cb))
        out.append(cb)
        for sub in as_callback_list(getattr(cb, "callbacks", None) or []):
            visit(sub, (*path, id(cb)))

    for cb in as_callback_list(cbs): visit(cb, ())
    return out


def event_methods(cb: Any, event: str):
    """The bound method `cb` runs at `event`, or None when it does not handle it.

    Methods inherited unchanged from `Callback` are documentation only and are skipped.
    """
    method = getattr(cb, event, None)
    if method is None or not callable(method): return None
    if getattr(type(cb), event, None) is getattr(Callback, event, object()): return None
    return method


def warn_misspelt_events(cb: Any, events: tuple[str, ...] = EVENTS) -> None:
    """Warn about methods named almost like an event: they would otherwise silently never run."""
    events = tuple(events)
    names = {n for n in dir(type(cb)) if not n.startswith("_")} | _instance_method_names(cb)
    for name in sorted(names - set(events)):
        guess = _guess(name, events)
        if guess is None or not callable(getattr(cb, name, None)): continue
        if name in FOREIGN_EVENT_NAMES:
            warn(f"{callback_name(cb)}.{name} is not an AIsaac event (it is another library's name), so it "
                 f"will never be called; use {guess}.", UserWarning)
        else:
            warn(f"{callback_name(cb)}.{name} looks like the event '{guess}' but is not an event, "
                 f"so it will never be called; rename it to '{guess}'.", UserWarning)


def _instance_method_names(cb: Any) -> set[str]:
    """The public names of the instance's own attributes, when some may be methods (`cb.befor_fit = ...`).

    Read without having Python build the instance's `__dict__` where it has none yet: CPython (3.11, 3.12) keeps
    the attributes of a plain instance in a compact form, and once the dict is built, reading the callback's
    attributes at every batch takes a slower path for the rest of its life (measured: 8 reads 270 ns compact, 675 ns
    with the dict, about 1% of shapes_bench's 200 us batch for a few callbacks, half its 1.02 budget). The compact
    values are visible to the garbage collector, so the dict is built only when one of them is callable."""
    values = [v for v in gc.get_referents(cb) if v is not type(cb)]
    # One dict: the instance's own, built already (or its one attribute, a dict: read alike).
    if len(values) == 1 and type(values[0]) is dict: values = list(values[0].values())
    if not any(callable(v) for v in values): return set()
    try: own = vars(cb)
    except TypeError: return set()  # no __dict__ (slots)
    return {n for n in own if not n.startswith("_")}


@functools.lru_cache(maxsize=None)
def _guess(name: str, events: tuple[str, ...]) -> str | None:
    """What to use instead of method `name`: the event it is another library's name for, or the event it looks like
    misspelt; None. Kept per name (a Trainer is often built per run, and the name matching is the slow part)."""
    return FOREIGN_EVENT_NAMES.get(name) or nearest_event(name, events)

