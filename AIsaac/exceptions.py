"""The exceptions of the trainer: the three cancels (`CancelBatchException`, `CancelEpochException`,
`CancelFitException`, together `CANCEL_EXCEPTIONS`), `CallbackError` for a failing callback (built by `callback_error`,
or a note added by `add_note`), `CallbackSetupError` for a set of callbacks that cannot run, and `CheckpointError` for
a checkpoint that cannot be read or does not fit."""
from __future__ import annotations

import types
from typing import Any


class CancelBatchException(Exception):
    """Skip the rest of this batch (and its `after_batch`); `cleanup_batch` still runs."""


class CancelEpochException(Exception):
    """Skip the rest of this epoch phase (and its `after_epoch`); `cleanup_epoch` still runs."""


class CancelFitException(Exception):
    """Stop the fit now (skipping `after_epoch` and `after_fit`); every `cleanup_*` still runs."""


CANCEL_EXCEPTIONS = (CancelBatchException, CancelEpochException, CancelFitException)


class CallbackError(RuntimeError):
    """A callback raised at an event; names the callback, the event, the epoch and the batch.

    The original exception is chained as `__cause__` and kept as `.original`. The error raised out of `fit` is also an
    instance of the original's class, with the original's attributes and `args` (see `callback_error`), so either
    class catches it and a handler reads it as it would the original.
    """

    def __init__(self, callback: str, event: str, where: str, original: BaseException):
        self.callback, self.event, self.where, self.original = callback, event, where, original
        self._text = f"{callback} failed at event '{event}' ({where}): {type(original).__name__}: {original}"
        # BaseException's own __init__, not super(): in a class combined with the original's, the next __init__ in
        # line may be that class's, with a signature of its own.
        BaseException.__init__(self, self._text)

    def __str__(self) -> str: return self._text

    def __reduce__(self) -> tuple:
        # The combined classes are made at run time and cannot be found by name: pickle the parts and combine again.
        return callback_error, (self.callback, self.event, self.where, self.original)


_TYPED: dict[type, type | None] = {}
# Kept by the exception machinery itself (the chain, the traceback, `args`), not copied from the original.
_OWN = frozenset({"args", "__traceback__", "__context__", "__cause__", "__suppress_context__", "__dict__",
                  "__weakref__", "__notes__"})


def add_note(error: BaseException, note: str) -> None:
    """`error.add_note(note)` (PEP 678); on Python 3.10, which lacks it, the note is kept in `__notes__` all the same."""
    if hasattr(error, "add_note"): error.add_note(note)
    else: error.__dict__.setdefault("__notes__", []).append(note)


def _typed_class(cls: type) -> type | None:
    """`CallbackError[cls]`, a subclass of both, made once per class; None where Python cannot combine them."""
    if cls not in _TYPED:
        try:
            _TYPED[cls] = type(f"CallbackError[{cls.__qualname__}]", (CallbackError, cls),
                               {"__module__": __name__, "__str__": CallbackError.__str__,
                                "__reduce__": CallbackError.__reduce__,
                                "__doc__": f"CallbackError for a callback that raised {cls.__qualname__}."})
        except Exception: _TYPED[cls] = None  # a layout or metaclass conflict, a class that forbids subclasses...
    return _TYPED[cls]


def _copy_state(error: BaseException, original: BaseException) -> None:
    """The original's attributes onto `error`: its `__dict__`, and the fields built-in and C-extension exceptions keep
    outside it (OSError's errno and filename, SyntaxError's lineno, StopIteration's value, `__slots__`...)."""
    error.__dict__.update({k: v for k, v in getattr(original, "__dict__", {}).items() if k != "__notes__"})
    for klass in reversed(type(original).__mro__[:-1]):  # not `object`, whose `__class__` would undo the combination
        for name, attr in vars(klass).items():
            if name in _OWN or not isinstance(attr, (types.MemberDescriptorType, types.GetSetDescriptorType)): continue
            try: setattr(error, name, getattr(original, name))
            except (AttributeError, TypeError, ValueError): pass  # unset on the original, or read-only
    error.args = original.args  # a handler reading `e.args[0]` (a KeyError's key) reads what the original held


def _builtin_base(cls: type) -> type:
    """The first built-in class of `cls`'s layout chain (OSError, RuntimeError...): the one whose `__new__` Python
    accepts for `cls` ("X.__new__(Y) is not safe" otherwise)."""
    while cls.__module__ != "builtins" and cls.__base__ is not None: cls = cls.__base__
    return cls


def callback_error(callback: str, event: str, where: str, original: BaseException) -> BaseException:
    """The error to raise for `original`, raised by `callback` at `event`: a CallbackError that is also an instance
    of the original's class, so `except PermissionError` (or `except TrialPruned`) still catches it after `fit`.

    It is made by the `__new__` of the built-in class that lays out its instances (OSError's, an exception group's,
    MemoryError's: each refuses any other), never by the original's `__init__` or `__new__` (whose signatures are
    their own), and carries the original's attributes.
    Where the two classes cannot be combined, the original itself is returned with a note (PEP 678) naming the
    callback, the event and the place: its class, attributes and traceback are then untouched.
    """
    typed = _typed_class(type(original))
    if typed is not None:
        try:
            error: Any = _builtin_base(typed).__new__(typed, *original.args)
            CallbackError.__init__(error, callback, event, where, original)
            _copy_state(error, original)
            return error
        except Exception: pass  # a __new__ with a signature of its own: fall back to the note
    add_note(original, f"Raised by {callback} at event '{event}' ({where}).")
    return original


class CallbackSetupError(ValueError):
    """The set of callbacks cannot be run as given (duplicate names, conflicting step phases...)."""


class CheckpointError(ValueError):
    """A checkpoint cannot be read safely or does not fit the trainer resuming from it."""
