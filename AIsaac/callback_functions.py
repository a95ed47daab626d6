"""`add_callback(s)` and `remove_callback(s)`: the trainer's own methods as functions of the trainer (the original
AIsaac's form); the Trainer's methods do the work."""
from __future__ import annotations

from typing import Any, Iterable

from .callback import callback_name


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


