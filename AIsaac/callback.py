"""`Callback`, the optional base class; `Order`, the named order values; the helpers that read any object as a callback;
`add_callback(s)` and `remove_callback(s)`, the trainer's own methods as functions (the original AIsaac's form)."""
from __future__ import annotations

import inspect
import numbers
import re
import warnings
from types import MappingProxyType
from typing import Any, Iterable, Mapping

from .events import EVENTS, EXCLUSIVE_PHASES, nearest_event
from .exceptions import CallbackSetupError
from .runtime.messages import inform

# Method names other libraries (fastai, Keras, Lightning) use, and the AIsaac event that does the same job.
FOREIGN_EVENT_NAMES = {
    "before_train": "before_epoch (with `if trainer.training:`)",
    "after_train": "after_epoch (with `if trainer.training:`)",
    "before_validate": "before_epoch (with `if not trainer.training:`)",
    "after_validate": "after_epoch (with `if not trainer.training:`)",
    "after_pred": "get_loss (runs right after predict) or after_batch",
    "after_loss": "before_backward",
    "after_backward": "step (with `observes = ('step',)` and an order below the training step's)",
    "before_step": "step (with `observes = ('step',)` and an order below the training step's)",
    "after_step": "zero_grad (with `observes = ('zero_grad',)`) or after_batch",
    "after_cancel_batch": "cleanup_batch", "after_cancel_epoch": "cleanup_epoch", "after_cancel_fit": "cleanup_fit",
    "on_train_begin": "before_fit", "on_train_end": "cleanup_fit", "on_epoch_begin": "before_epoch",
    "on_epoch_end": "after_epoch", "on_train_batch_begin": "before_batch", "on_train_batch_end": "after_batch",
    "on_batch_end": "after_batch", "on_batch_begin": "before_batch",
}


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
    An epoch with a phase that was interrupted or cancelled (`trainer.phase_complete` False) has no final log.
    """
    if trainer.training and trainer.run_valid: return None  # the validation phase still follows
    if not getattr(trainer, "phase_complete", True): return None  # an interrupted or cancelled phase: no epoch
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
    `observes` names step phases this callback runs at beside the one callback doing them (a gradient-norm
    recorder at `step`, say); two callbacks doing one step phase with neither claiming nor observing it is an error.
    `yields` names step phases this callback does only when no other callback does them (AccelerateCB's plain step,
    which gives way to BasicTrainCB or any other step callback in the same fit).
    `event_orders` gives some events an order of their own instead of `order` (`{'before_batch': Order.DEFAULT}`:
    AccelerateCB prepares before DeviceCB moves anything, its subclass's `before_batch` sees the batch after it).
    `side_runs` says whether the callback takes part in side runs, the fits that are put back afterwards (`lr_find`,
    `show_image_batch`): callbacks that write files or take decisions (checkpoints, loggers, early stopping, save-best,
    the epoch table) set it to False.
    """

    order: int = 0
    claims: tuple[str, ...] = ()
    observes: tuple[str, ...] = ()
    yields: tuple[str, ...] = ()
    event_orders: Mapping[str, float] = MappingProxyType({})
    side_runs: bool = True

    def __repr__(self) -> str: return f"{type(self).__name__}()"


def callback_name(cb: Any) -> str:
    """The name a callback is reachable by on the trainer: its class name."""
    return type(cb).__name__


def callback_order(cb: Any, event: str | None = None) -> float:
    """The callback's `order`, or at `event` its `event_orders[event]` where it gives one."""
    if event is not None:
        orders = getattr(cb, "event_orders", None)
        if orders and event in orders: return orders[event]
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
    orders = getattr(cb, "event_orders", None) or {}
    if not isinstance(orders, Mapping):
        raise CallbackSetupError(f"{callback_name(cb)}.event_orders must map event names to orders, like "
                                 f"{{'before_batch': Order.DEFAULT}}; got {orders!r}.")
    for event, value in orders.items():
        if event not in EVENTS:
            guess = nearest_event(event, EVENTS)
            raise CallbackSetupError(f"{callback_name(cb)}.event_orders names '{event}', which is not an event" +
                                     (f"; did you mean '{guess}'?" if guess else "."))
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise CallbackSetupError(f"{callback_name(cb)}.event_orders['{event}'] must be a number (an Order "
                                     f"constant); got {value!r}.")
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
    names = {n for n in dir(type(cb)) if not n.startswith("_")} | {n for n in vars(cb) if not n.startswith("_")} \
        if hasattr(cb, "__dict__") else {n for n in dir(type(cb)) if not n.startswith("_")}
    for name in sorted(names - set(events)):
        if name in FOREIGN_EVENT_NAMES and callable(getattr(cb, name, None)):
            warnings.warn(f"{callback_name(cb)}.{name} is not an AIsaac event (it is another library's name), so it "
                          f"will never be called; use {FOREIGN_EVENT_NAMES[name]}.", UserWarning, stacklevel=4)
            continue
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


def epoch_log_keys(trainer: Any) -> set[str] | None:
    """The keys the trainer's callbacks will put in `epoch_log` this fit (from their `log_keys(trainer)` methods), or
    None when no callback produces an epoch log at all."""
    producers = [cb for cb in trainer.cbs if callable(getattr(cb, "log_keys", None))]
    if not producers: return None
    return {"epoch"}.union(*(cb.log_keys(trainer) for cb in producers))


def check_log_key(cb: Any, key: str | None, trainer: Any) -> None:
    """Check at fit start that something will produce `key` in `epoch_log` for the callback `cb`.

    Raise CallbackSetupError when no callback fills the epoch log, or when `key` is a loss or metric that this fit
    will not produce (e.g. 'valid' in a fit without validation). Any other unknown key may still come from
    `trainer.log(name, value)` (as `name`, or `train_name` for values logged in training), whose names are known only
    once logged: it is accepted with a note on the "AIsaac" logger, and checked when the first epoch ends.
    """
    keys = epoch_log_keys(trainer)
    if keys is None:
        raise CallbackSetupError(f"{callback_name(cb)} reads the epoch log, but no callback fills it, so it would do "
                                 f"nothing; add MetricsCB() (with the metrics you want to use).")
    if key is None or key in keys or is_record_key(key): return
    known = {"train", "valid"}  # what the producers could put there in some fit: refused when this fit will not
    for producer in trainer.cbs:
        if callable(getattr(producer, "log_keys", None)):
            known |= set(getattr(producer, "metrics", {})) | set(getattr(producer, "train_metrics", {}))
    if key in known:
        raise CallbackSetupError(f"{callback_name(cb)} monitors '{key}', which no callback puts in the epoch log this "
                                 f"fit (it will hold: {', '.join(sorted(keys))}); pass monitor= one of those, add the "
                                 f"metric to MetricsCB, or fit with validation for 'valid'.")
    inform(trainer, f"{callback_name(cb)} monitors '{key}', which no callback names in advance (the epoch log will "
                    f"hold: {', '.join(sorted(keys))}); it must come from trainer.log('{key}', ...) (or "
                    f"trainer.log('{key.removeprefix('train_')}', ...) in training), and is checked when the first "
                    f"epoch ends.")
