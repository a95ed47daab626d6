"""The exceptions, each in its documented scope on a real fit: a cancel raised before, inside and after what it cancels
skips the rest of that scope only (its cleanup still runs); any other error runs every cleanup and comes out as a
CallbackError naming the callback and the place, that is also an instance of the original's class."""
import pytest
import torch
from torch import nn

from AIsaac.all import (BasicTrainCB, CallbackError, CancelBatchException, CancelEpochException, CancelFitException,
                        EVENTS, Trainer)
from AIsaac.events import EXCLUSIVE_PHASES
from AIsaac.exceptions import CANCEL_EXCEPTIONS, add_note, callback_error

LEVEL = {CancelBatchException: "batch", CancelEpochException: "epoch", CancelFitException: "fit"}
# The event that is "inside" each level: the next level down (a batch's step phase is inside the batch).
INSIDE = {"batch": "get_loss", "epoch": "before_batch", "fit": "before_epoch"}


class Trace:
    order = -1  # logs each event before Raise (order 0) can raise in it
    observes = EXCLUSIVE_PHASES  # runs beside BasicTrainCB's step phases

    def __init__(self): self.events = []


for _ev in EVENTS: setattr(Trace, _ev, (lambda ev: lambda self, trainer: self.events.append(ev))(_ev))


class Raise:
    """Raises `exc` once at `event`: in the training phase of epoch 0 (at its batch 1 for batch events)."""

    observes = EXCLUSIVE_PHASES

    def __init__(self, exc, event):
        def method(trainer):
            if self.done: return
            if "epoch" in event or event in ("before_batch", "get_loss", "after_batch"):
                if not trainer.training or trainer.epoch != 0: return
                if "epoch" not in event and trainer.batch_num != 1: return
            self.done = True
            raise exc()
        self.done = False
        setattr(self, event, method)


@pytest.mark.parametrize("exc", [CancelBatchException, CancelEpochException, CancelFitException])
@pytest.mark.parametrize("where", ["before", "inside", "after"])
def test_cancel(tiny_dls, tiny_model, exc, where):
    level = LEVEL[exc]
    event = {"before": f"before_{level}", "inside": INSIDE[level], "after": f"after_{level}"}[where]
    t = Trace()
    Trainer(tiny_dls, nn.CrossEntropyLoss(), torch.optim.SGD, tiny_model,
            callbacks=[BasicTrainCB(), Raise(exc, event), t]).fit(2)
    ev = t.events
    assert ev.count(f"before_{level}") == ev.count(f"cleanup_{level}")  # cleanup always runs
    assert ev[-1] == "cleanup_fit"
    skipped = 0 if where == "after" else 1  # raised in after_X: after_X itself had run (for the tracer)
    n_batches = 2 * (6 + 3)  # 2 epochs of 6 training and 3 validation batches
    if exc is CancelBatchException:  # only that batch is cut short; the fit goes on to the end
        assert ev.count("cleanup_batch") == n_batches and ev.count("after_batch") == n_batches - skipped
        assert ev.count("step") == 12 - skipped and "after_fit" in ev
    elif exc is CancelEpochException:  # that training phase stops; its validation and epoch 1 still run
        assert ev.count("cleanup_epoch") == 4 and ev.count("after_epoch") == 4 - skipped and "after_fit" in ev
        assert ev.count("step") == {"before": 6, "inside": 6 + 1, "after": 12}[where]
    else:  # the fit stops where it is
        assert ev.count("before_epoch") == {"before": 0, "inside": 1, "after": 4}[where]
        assert ("after_fit" in ev) == (where == "after")


@pytest.mark.parametrize("event", ["before_fit", "before_epoch", "predict", "after_batch", "after_epoch", "after_fit"])
def test_other_exceptions_still_run_every_cleanup(tiny_dls, tiny_model, event):
    class Boom(Exception): pass
    t = Trace()
    with pytest.raises(Exception) as info:
        Trainer(tiny_dls, nn.CrossEntropyLoss(), torch.optim.SGD, tiny_model,
                callbacks=[BasicTrainCB(), Raise(Boom, event), t]).fit(2)
    assert isinstance(info.value.__cause__, Boom)
    for level in ("batch", "epoch", "fit"):
        assert t.events.count(f"before_{level}") == t.events.count(f"cleanup_{level}")
    assert t.events[-1] == "cleanup_fit"


def test_cancel_fit_in_before_fit_runs_only_cleanup_fit(tiny_dls, tiny_model):
    t = Trace()
    model_before = [p.detach().clone() for p in tiny_model.parameters()]
    Trainer(tiny_dls, nn.CrossEntropyLoss(), torch.optim.SGD, tiny_model,
            callbacks=[BasicTrainCB(), Raise(CancelFitException, "before_fit"), t]).fit(2)
    assert t.events == ["before_fit", "cleanup_fit"]  # the tracer's before_fit ran first (order -1); nothing after
    assert all(torch.equal(a, b) for a, b in zip(model_before, tiny_model.parameters()))  # no batch trained


def test_the_cancels_are_the_three_and_none_is_an_error_of_another_kind():
    assert CANCEL_EXCEPTIONS == (CancelBatchException, CancelEpochException, CancelFitException)
    assert not any(issubclass(c, (CallbackError, RuntimeError, ValueError)) for c in CANCEL_EXCEPTIONS)


class TrialPruned(Exception):
    """Like optuna.TrialPruned: an exception class from another library."""

    def __init__(self, msg, trial=None):
        super().__init__(msg)
        self.trial = trial


def test_callback_error_is_also_the_original_class_and_keeps_its_attributes():
    original = TrialPruned("trial 3 pruned", trial=3)
    err = callback_error("Pruner", "after_epoch", "epoch 0, validation", original)
    assert isinstance(err, CallbackError) and isinstance(err, TrialPruned)
    assert (err.callback, err.event, err.where, err.original, err.trial) == ("Pruner", "after_epoch",
                                                                              "epoch 0, validation", original, 3)
    assert str(err) == "Pruner failed at event 'after_epoch' (epoch 0, validation): TrialPruned: trial 3 pruned"
    assert type(callback_error("X", "step", "w", TrialPruned("again"))) is type(err)  # one class per original class




def test_add_note_keeps_notes_in_order():
    err = ValueError("x")
    add_note(err, "first")
    add_note(err, "second")
    assert err.__notes__ == ["first", "second"]


def test_a_foreign_exception_out_of_fit_is_caught_by_its_own_class_and_names_the_callback(tiny_dls, tiny_model):
    class Pruner:
        def after_epoch(self, trainer):
            if not trainer.training: raise TrialPruned("trial 3 pruned")
    t = Trace()
    with pytest.raises(TrialPruned) as info:
        Trainer(tiny_dls, nn.CrossEntropyLoss(), torch.optim.SGD, tiny_model, [BasicTrainCB(), Pruner(), t]).fit(2)
    e = info.value
    assert str(e) == "Pruner failed at event 'after_epoch' (epoch 0, validation): TrialPruned: trial 3 pruned"
    assert isinstance(e, CallbackError) and isinstance(e.original, TrialPruned) and e.__cause__ is e.original
    assert t.events[-2:] == ["cleanup_epoch", "cleanup_fit"] and "after_fit" not in t.events
"""Whatever a callback raises comes out of `fit` as something `except ThatClass` catches, naming the callback, the
event, the epoch and the batch, with the original's attributes and traceback (AIsaac.exceptions.callback_error)."""
import errno
import io
import json
import pickle
import sqlite3
import struct
import subprocess
import traceback
import zipfile
import zlib

import numpy as np
import pytest
from torch.utils.data import DataLoader, TensorDataset

from AIsaac.all import Callback, DataLoaders

WHERE = "FailAt failed at event 'after_batch' (epoch 1, batch 2, training)"


class FailAt(Callback):
    """Raises what `make()` raises (or returns) at after_batch of epoch 1, batch 2."""

    def __init__(self, make): self.make, self.raised = make, None

    def after_batch(self, trainer):
        if trainer.training and (trainer.epoch, trainer.batch_num) == (1, 2):
            try: error = self.make()
            except BaseException as e: error = e
            self.raised = error
            raise error


def fit_raising(make):
    """A real two-epoch fit whose FailAt callback raises; returns (what came out of fit, what the callback raised)."""
    ds = TensorDataset(torch.randn(16, 3), torch.randint(0, 2, (16,)))
    dls = DataLoaders(DataLoader(ds, batch_size=4), DataLoader(ds, batch_size=4))
    fail = FailAt(make)
    trainer = Trainer(dls, nn.CrossEntropyLoss(), torch.optim.SGD, nn.Linear(3, 2), [BasicTrainCB(), fail])
    try: trainer.fit(2, lr=0.1)
    except BaseException as e: return e, fail.raised
    raise AssertionError("the fit did not raise")


def text_of(error):
    return "\n".join([str(error), *getattr(error, "__notes__", [])])


def assert_kept(out, original, cls):
    """`out` is caught by `except cls`, names the place, and keeps the original (chained, or itself) and its traceback."""
    assert isinstance(out, cls), f"{cls.__name__} came out as {type(out).__name__}: {out}"
    assert WHERE in text_of(out) or all(w in text_of(out) for w in ("FailAt", "after_batch", "epoch 1", "batch 2")), \
        text_of(out)
    assert out is original or (out.__cause__ is original and out.original is original)
    frames = [f.name for f in traceback.extract_tb(original.__traceback__)]
    assert "after_batch" in frames, frames  # the original's own traceback, down to the callback's line
    try: raise out
    except cls: pass  # what a user's handler does


def builtin_exception_classes(root=BaseException):
    """Every built-in exception class, walking the hierarchy from `root`."""
    out = []
    def walk(c):
        if c.__module__ == "builtins" and c not in out:
            out.append(c)
            for sub in c.__subclasses__(): walk(sub)
    walk(root)
    return out


def instance_of(cls):
    """An instance of the built-in class `cls`, with the arguments its own constructor wants."""
    if issubclass(cls, UnicodeDecodeError): return cls("utf-8", b"\xff", 0, 1, "invalid start byte")
    if issubclass(cls, UnicodeEncodeError): return cls("ascii", "\xe9", 0, 1, "ordinal not in range")
    if issubclass(cls, UnicodeTranslateError): return cls("\xe9", 0, 1, "cannot translate")
    if issubclass(cls, BaseExceptionGroup):
        return cls("boom", [ValueError("inner")] if issubclass(cls, Exception) else [KeyboardInterrupt()])
    if issubclass(cls, OSError):  # (OSError itself with EACCES would be made a PermissionError)
        return cls(errno.EIO if cls is OSError else errno.EACCES, "Permission denied", "/some/file", None, "/other/file")
    if issubclass(cls, SyntaxError): return cls("bad syntax", ("f.py", 3, 4, "x = = 1\n", 3, 5))
    return cls("boom")


EXCEPTION_CLASSES = builtin_exception_classes(Exception)
# The BaseExceptions that are not Exceptions (KeyboardInterrupt, SystemExit, GeneratorExit, a group holding one):
# never wrapped, so that Ctrl-C and sys.exit stop the fit as themselves.
OTHER_BASE_CLASSES = [c for c in builtin_exception_classes() if not issubclass(c, Exception) and c is not BaseException]


def test_the_walk_finds_the_whole_hierarchy():
    names = {c.__name__ for c in EXCEPTION_CLASSES}
    assert {"OSError", "PermissionError", "FileNotFoundError", "ConnectionRefusedError", "UnicodeDecodeError",
            "ExceptionGroup", "KeyError", "StopIteration", "SyntaxError", "IndentationError"} <= names
    assert len(EXCEPTION_CLASSES) > 60
    assert {"KeyboardInterrupt", "SystemExit", "GeneratorExit", "BaseExceptionGroup"} <= \
        {c.__name__ for c in OTHER_BASE_CLASSES}


@pytest.mark.parametrize("cls", EXCEPTION_CLASSES, ids=lambda c: c.__name__)
def test_every_builtin_exception_raised_in_a_fit_keeps_its_class(cls):
    out, original = fit_raising(lambda: instance_of(cls))
    assert type(original) is cls
    assert_kept(out, original, cls)
    assert isinstance(out, CallbackError)
    assert out.args == original.args  # `except KeyError as e: e.args[0]` reads the key, as without AIsaac
    if isinstance(original, OSError):
        assert (out.errno, out.strerror, out.filename, out.filename2) == \
            (original.errno, "Permission denied", "/some/file", "/other/file")
    if isinstance(original, SyntaxError): assert (out.lineno, out.offset, out.text) == (3, 4, "x = = 1\n")
    if isinstance(original, UnicodeError) and hasattr(original, "start"):
        assert (out.start, out.end, out.reason) == (original.start, original.end, original.reason)
    if isinstance(original, BaseExceptionGroup):
        assert out.exceptions == original.exceptions
        matched, rest = out.split(ValueError)
        assert matched is not None and rest is None


def test_oserrors_raised_by_the_system_keep_their_class_errno_and_filename(tmp_path):
    """The issue's case: an OSError came out as `TypeError: BaseException.__new__(CallbackError[PermissionError]) is
    not safe`, the original hidden."""
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        def write(): (locked / "ck.pth").write_bytes(b"x")
        out, original = fit_raising(write)
        if isinstance(original, PermissionError):  # not as root, which may write anywhere
            assert_kept(out, original, PermissionError)
            assert out.errno == errno.EACCES and out.filename == str(locked / "ck.pth")
    finally: locked.chmod(0o700)
    out, original = fit_raising(lambda: open(tmp_path / "missing.txt"))
    assert_kept(out, original, FileNotFoundError)
    assert (out.errno, out.filename) == (errno.ENOENT, str(tmp_path / "missing.txt"))
    assert "No such file or directory" in str(out) and WHERE in str(out)

    def connect():
        import socket
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        socket.create_connection(("127.0.0.1", port), timeout=2)  # nothing listens there now
    out, original = fit_raising(connect)
    assert_kept(out, original, ConnectionRefusedError)
    assert out.errno == errno.ECONNREFUSED


@pytest.mark.parametrize("cls", OTHER_BASE_CLASSES, ids=lambda c: c.__name__)
def test_keyboard_interrupt_system_exit_and_other_base_exceptions_come_out_as_themselves(cls):
    out, original = fit_raising(lambda: instance_of(cls))
    assert out is original and type(out) is cls  # never wrapped: Ctrl-C and sys.exit stop the fit as themselves


@pytest.mark.parametrize("cls", OTHER_BASE_CLASSES, ids=lambda c: c.__name__)
def test_keyboard_interrupt_and_other_base_exceptions_say_where_they_were_raised(cls):
    out, original = fit_raising(lambda: instance_of(cls))
    assert WHERE.replace(" failed", "") in text_of(out) or "FailAt" in text_of(out), text_of(out)


# ---- exceptions from the standard library's C modules, numpy and torch, and ones with their own constructors ----
class TwoArgs(Exception):
    def __init__(self, code, detail):
        super().__init__(f"code {code}: {detail}")
        self.code, self.detail = code, detail


class KeywordOnly(RuntimeError):  # a RuntimeError, like CallbackError: its __init__ comes next in the combined class
    def __init__(self, *, reason):
        super().__init__(reason)
        self.reason = reason

    def __str__(self): return f"because {self.reason}"


class Slotted(Exception):
    __slots__ = ("weight",)

    def __init__(self, weight):
        super().__init__(weight)
        self.weight = weight


class OwnNew(Exception):
    def __new__(cls, value, *, scale):
        self = super().__new__(cls, value)
        self.value = value * scale
        return self

    def __init__(self, value, *, scale): super().__init__(value)


class NoSubclasses(Exception):
    def __init_subclass__(cls, **kwargs): raise TypeError("NoSubclasses may not be subclassed")


def raise_from(f):
    def make():
        f()
        raise AssertionError("did not raise")
    return make


OTHERS = {
    "zipfile.BadZipFile": (zipfile.BadZipFile, raise_from(lambda: zipfile.ZipFile(io.BytesIO(b"not a zip")))),
    "json.JSONDecodeError": (json.JSONDecodeError, raise_from(lambda: json.loads("{"))),
    "subprocess.CalledProcessError": (subprocess.CalledProcessError,
                                      lambda: subprocess.CalledProcessError(2, ["ls", "x"], output=b"o")),
    "pickle.UnpicklingError": (pickle.UnpicklingError, raise_from(lambda: pickle.loads(b"\x80\x05junk"))),
    "sqlite3.OperationalError": (sqlite3.OperationalError,
                                 raise_from(lambda: sqlite3.connect(":memory:").execute("select * from nothing"))),
    "zlib.error": (zlib.error, raise_from(lambda: zlib.decompress(b"junk"))),
    "struct.error": (struct.error, raise_from(lambda: struct.unpack("i", b"x"))),
    "numpy.linalg.LinAlgError": (np.linalg.LinAlgError, raise_from(lambda: np.linalg.inv(np.zeros((2, 2))))),
    "numpy AxisError": (np.exceptions.AxisError, raise_from(lambda: np.zeros(2).sum(axis=3))),
    "torch.linalg.LinAlgError": (torch.linalg.LinAlgError, raise_from(lambda: torch.linalg.cholesky(-torch.eye(2)))),
    "torch.OutOfMemoryError": (torch.OutOfMemoryError, lambda: torch.OutOfMemoryError("CUDA out of memory.")),
    "torch shape RuntimeError": (RuntimeError, raise_from(lambda: torch.ones(2) @ torch.ones(3))),
    "custom __init__(code, detail)": (TwoArgs, lambda: TwoArgs(7, "seven")),
    "keyword-only __init__ and own __str__": (KeywordOnly, lambda: KeywordOnly(reason="the disk is full")),
    "__slots__": (Slotted, lambda: Slotted(3.5)),
    "own __new__": (OwnNew, lambda: OwnNew(2, scale=10)),
    "refuses subclasses": (NoSubclasses, lambda: NoSubclasses("no")),
}


@pytest.mark.parametrize("name", OTHERS)
def test_extension_and_custom_exceptions_keep_their_class_and_attributes(name):
    cls, make = OTHERS[name]
    out, original = fit_raising(make)
    assert_kept(out, original, cls)
    assert str(original) in str(out) or out is original
    for attr, value in vars(original).items():
        if attr != "__notes__": assert getattr(out, attr) == value, attr
    if isinstance(original, Slotted): assert out.weight == 3.5
    if isinstance(original, OwnNew): assert out.value == 20
    if isinstance(original, json.JSONDecodeError): assert (out.pos, out.lineno) == (original.pos, original.lineno)
    if isinstance(original, KeywordOnly): assert "because the disk is full" in str(out)


def test_the_combined_error_pickles_back_to_one_of_both_classes():
    err = callback_error("FailAt", "after_batch", "epoch 1, batch 2, training", KeyError("lr"))
    back = pickle.loads(pickle.dumps(err))
    assert isinstance(back, KeyError) and isinstance(back, CallbackError)
    assert str(back) == str(err) and back.args == ("lr",) and back.callback == "FailAt"
