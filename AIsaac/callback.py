"""`Callback`, the optional base class; `Order`, the named order values; the helpers that read any object as a callback;
`add_callback(s)` and `remove_callback(s)`, the trainer's own methods as functions (the original AIsaac's form)."""
from __future__ import annotations

import re
import warnings
from typing import Any, Iterable

from .events import EVENTS, nearest_event


class Order:
    """Named `order` values. Callbacks run in increasing `order` at every event; ties keep the order they were added.

    Place a callback relative to these (e.g. `order = Order.LOGGER`) rather than to another class's number.
    """

    FIRST = -1000       # profilers: their before_fit runs before every other callback's
    LAUNCH = -20        # distributed launch (AccelerateCB): prepares model, optimizer and loaders before they move
    DEVICE = -10        # DeviceCB: the model and each batch are on the device before anyone reads them
    STEP_WRAPPER = -5   # batch augmentation, compile, mixed precision: wrap the batch, the model or the step
    GUARD = -1          # checks of the loss before the step callbacks act on it (TerminateOnNaNCB)
    DEFAULT = 0         # the training step and most callbacks
    METRICS = 0         # MetricsCB: fills `trainer.epoch_log` at the cleanup_epoch of an epoch's last phase
    LOGGER = 10         # loggers and monitors: read the finished `epoch_log` (CSV, TensorBoard, early stopping)
    DISPLAY = 50        # ProgressCB: shows the epoch table
    LAST = 100          # after the others' after_batch and after_epoch (checkpoints, OneBatchCB)
    FINAL = 1000        # the very end of an event (AccelerateCB's agreed stop, raised once all others cleaned up)


def final_epoch_log(trainer: Any) -> dict | None:
    """`trainer.epoch_log` once the epoch's numbers are final, else None.

    The trainer resets `epoch_log` to None as each epoch phase begins; MetricsCB (order `Order.METRICS`) fills it at the
    `cleanup_epoch` of the epoch's last phase (validation, or training in a fit without validation). A callback with a
    higher order reads it there, from this function; nobody clears it, so it still holds the last epoch after the fit.
    """
    if trainer.training and trainer.run_valid: return None  # the validation phase still follows
    log = getattr(trainer, "epoch_log", None)
    return log if log is not None and log.get("epoch") == trainer.epoch else None


_RECORD_KEY = re.compile(r"(lr|mom)(_\d+)?|(train|valid)_time")


def is_record_key(key: str) -> bool:
    """Whether an `epoch_log` key is a record of the run (`lr`, `lr_<group>`, `mom`, `mom_<group>`, `train_time`,
    `valid_time`) rather than the epoch number, a loss or a metric; the epoch table shows only the latter."""
    return _RECORD_KEY.fullmatch(key) is not None


class Callback:
    """Optional base class for callbacks; plain objects with event methods work just as well.

    A callback is any object with methods named after events (`before_fit`, `predict`, `after_batch`, ...),
    each taking the trainer. `order` (default 0) sorts callbacks; ties keep the order they were added.
    A `callbacks` attribute makes the object a group: its members are added with it, recursively.
    `claims` names step phases (`predict`, `get_loss`, `backward`, `step`, `zero_grad`) that this callback
    takes over from whichever other callback would do them (a mixed-precision or accumulation step, say).
    """

    order: int = 0
    claims: tuple[str, ...] = ()

    def __repr__(self) -> str: return f"{type(self).__name__}()"


def callback_name(cb: Any) -> str:
    """The name a callback is reachable by on the trainer: its class name."""
    return type(cb).__name__


def callback_order(cb: Any) -> float:
    return getattr(cb, "order", 0)


def flatten_callbacks(cbs: Iterable[Any]) -> list[Any]:
    """Callbacks in the order added, each group followed by its members (recursively, depth first)."""
    out, seen = [], set()

    def visit(cb: Any, path: tuple[int, ...]) -> None:
        if id(cb) in path: raise ValueError(f"{callback_name(cb)} contains itself through its `callbacks` attribute")
        if id(cb) in seen: return
        seen.add(id(cb))
        out.append(cb)
        for sub in getattr(cb, "callbacks", None) or ():
            visit(sub, (*path, id(cb)))

    for cb in cbs: visit(cb, ())
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
    names = {n for n in dir(type(cb)) if not n.startswith("_")} | {n for n in vars(cb) if not n.startswith("_")} \
        if hasattr(cb, "__dict__") else {n for n in dir(type(cb)) if not n.startswith("_")}
    for name in sorted(names - set(events)):
        guess = nearest_event(name, events)
        if guess and callable(getattr(cb, name, None)):
            warnings.warn(f"{callback_name(cb)}.{name} looks like the event '{guess}' but is not an event, "
                          f"so it will never be called; rename it to '{guess}'.", UserWarning, stacklevel=4)


# ---- the callbacks of a trainer, as functions (the original AIsaac's form; the Trainer's methods do the work) ----
def add_callback(trainer: Any, callback: Any, force: bool = False) -> list[Any]:
    """`trainer.add_callbacks([callback], force)`: add one callback (a group with its members); None adds nothing.

    Returns the callbacks added. A name already taken is an error unless `force` (then it is added as `Name_2`).
    """
    if callback is None: return []
    return trainer.add_callbacks([callback], force=force)


def add_callbacks(trainer: Any, callbacks: Iterable[Any], force: bool = False) -> list[Any]:
    """`trainer.add_callbacks(callbacks, force)`: add each callback of a list or tuple in order (None entries are
    skipped); returns the callbacks added."""
    if callbacks is None: return []
    if not isinstance(callbacks, (list, tuple)): callbacks = [callbacks]
    return trainer.add_callbacks([cb for cb in callbacks if cb is not None], force=force)


def _on_trainer(trainer: Any, callback: Any) -> Any:
    """The callback itself, from the callback or its name; an error when it is not on the trainer."""
    if isinstance(callback, str):
        named = trainer.named_callbacks
        if callback not in named:
            raise ValueError(f"No callback named {callback!r} on this trainer; its callbacks are: {', '.join(named) or 'none'}.")
        return named[callback]
    if all(cb is not callback for cb in trainer.cbs):
        name = callback_name(callback)
        raise ValueError(f"This {name} is not on the trainer: remove a callback by itself or by its name, e.g. "
                         f"remove_callback(trainer, trainer.{name}) or remove_callback(trainer, {name!r}).")
    return callback


def remove_callback(trainer: Any, callback: Any) -> None:
    """Remove a callback from `trainer` (a group with its members): the callback itself, or its name (`'MetricsCB'`)."""
    trainer.remove_callbacks([_on_trainer(trainer, callback)])


def remove_callbacks(trainer: Any, callbacks: Iterable[Any]) -> None:
    """`remove_callback` for each of `callbacks` (callbacks or names); all are checked before any is removed."""
    if isinstance(callbacks, str) or not isinstance(callbacks, (list, tuple)): callbacks = [callbacks]
    trainer.remove_callbacks([_on_trainer(trainer, cb) for cb in callbacks])
