"""Property-based tests of the event machine: callbacks raise cancel exceptions and errors at random events, and the
trace of events must keep its invariants (scopes nest and close, after_X runs exactly when nothing was raised in X,
callbacks run in order, every cleanup runs, an error reaches the user as CallbackError with every later cleanup error
attached as a note, the trainer can fit again). The second half does the same with random sets of the toolbox
callbacks on a real model, with checkpoints on disk."""
from hypothesis import given, settings
from hypothesis import strategies as st

from AIsaac.all import (Callback, CallbackError, CancelBatchException, CancelEpochException, CancelFitException,
                        DataLoaders, Trainer)
from AIsaac.events import BATCH_EVENTS, EVENTS, EXCLUSIVE_PHASES, STEP_PHASES

N_EPOCHS, N_TRAIN, N_VALID = 2, 3, 2
CAUGHT_BY = {"batch": CancelBatchException, "epoch": CancelEpochException, "fit": CancelFitException}
TRAIN_STEPS, VALID_STEPS = STEP_PHASES, ("predict", "get_loss")


class FakeModel:
    def train(self, mode=True): self.training = mode
    def parameters(self): return iter(())


class Recorder(Callback):
    observes = EXCLUSIVE_PHASES  # records the step phases; recorder A (below) does them

    def __init__(self, name, log):
        self.name, self.log = name, log
        for ev in EVENTS: setattr(self, ev, self._record(ev))

    def _record(self, ev):
        def f(trainer): self.log.append((self.name, ev, trainer.training))
        return f


def recorder(name, order, log):
    """A Recorder of its own class (the trainer names callbacks by class), with `order`; A does the step phases."""
    return type(f"Recorder{name}", (Recorder,), {"order": order, "observes": () if name == "A" else EXCLUSIVE_PHASES})(
        name, log)


class Raiser(Callback):
    """Raises `schedule[(event, n)]` at the n-th call of `event` (counted from 0)."""

    order = 10
    observes = EXCLUSIVE_PHASES

    def __init__(self, schedule, log):
        self.schedule, self.log, self.calls = schedule, log, {}
        for ev in EVENTS: setattr(self, ev, self._maybe_raise(ev))

    def _maybe_raise(self, ev):
        def f(trainer):
            n = self.calls[ev] = self.calls.get(ev, -1) + 1
            kind = self.schedule.get((ev, n))
            if kind is None: return
            exc = kind(f"{ev} #{n}")
            self.log.append(("raise", ev, exc))
            raise exc
        return f


def level(ev):
    """The scope an event belongs to: batch, epoch or fit."""
    return "batch" if ev in BATCH_EVENTS else ev.split("_", 1)[1]


# Cancel exceptions only where they mean something (their own scope or one inside it); errors anywhere.
PLACES = {CancelBatchException: [e for e in BATCH_EVENTS if e != "cleanup_batch"],
          CancelEpochException: [e for e in EVENTS if level(e) in ("batch", "epoch") and not e.startswith("cleanup")],
          CancelFitException: [e for e in EVENTS if not e.startswith("cleanup")],
          ValueError: list(EVENTS)}
raise_points = st.sampled_from(list(PLACES)).flatmap(
    lambda kind: st.tuples(st.sampled_from(PLACES[kind]), st.integers(0, 6), st.just(kind)))


def run_fit(schedule):
    log = []
    a, b, c, d = recorder("A", -10, log), recorder("B", 5, log), recorder("C", 5, log), recorder("D", 20, log)
    raiser = Raiser(schedule, log)
    trainer = Trainer(DataLoaders(list(range(N_TRAIN)), list(range(N_VALID))), None, lambda params, lr: object(),
                      FakeModel(), [b, a, c])
    try:
        trainer.fit(N_EPOCHS, callbacks=[raiser, d])
        outcome = None
    except CallbackError as e: outcome = e
    return trainer, log, outcome


def calls(log):
    """Group the trace into event calls: (event, training, names of the callbacks that ran, exception raised)."""
    out = []
    for entry in log:
        if entry[0] == "raise": out[-1][3] = entry[2]
        elif out and out[-1][0] == entry[1] and out[-1][1] == entry[2] and entry[0] not in out[-1][2] \
                and (out[-1][3] is None or entry[1].startswith("cleanup")):
            out[-1][2].append(entry[0])
        else: out.append([entry[1], entry[2], [entry[0]], None])
    return out


def check_trace(log, outcome, order=("A", "B", "C", "D"), n_epochs=N_EPOCHS):
    stack, escaped = [], None  # each open scope: [name, exception propagating in it, after seen, children, training]
    for ev, training, names, raised in calls(log):
        # Order: by `order`, ties in the order added; the callbacks after the raiser are skipped when it raises,
        # except in a cleanup, where every callback runs.
        assert names == list(order if raised is None or ev.startswith("cleanup") else order[:3]), (ev, names)
        kind, scope = ev.split("_", 1) if level(ev) == ev.split("_", 1)[-1] else ("step", "batch")
        if kind == "before":
            parent = {"fit": None, "epoch": "fit", "batch": "epoch"}[scope]
            assert (stack[-1][0] if stack else None) == parent, f"{ev} opened inside {stack and stack[-1][0]}"
            if stack: stack[-1][3] += 1
            stack.append([scope, None, False, 0, training, []])
        else:
            top = stack[-1]
            assert top[0] == scope, f"{ev} inside the {top[0]} scope"
            # Stop at once: once an exception runs through a scope, the next thing in it is its cleanup.
            assert top[1] is None or kind == "cleanup", f"{ev} ran after {top[1]!r} was raised"
            if kind == "step":
                steps = top[5]
                steps.append(ev)
                assert tuple(steps) == (TRAIN_STEPS if training else VALID_STEPS)[:len(steps)], steps
            if kind == "after":
                assert not top[2]
                top[2] = True
        if raised is not None and kind != "cleanup": stack[-1][1] = raised
        if kind == "cleanup":
            name, exc, after_seen, children, phase_training, steps = stack.pop()
            # after_X ran exactly when nothing was raised in X before it.
            assert after_seen or exc is not None, f"{ev}: after_{name} was skipped with nothing raised"
            if after_seen and exc is None and name == "batch":
                assert tuple(steps) == (TRAIN_STEPS if phase_training else VALID_STEPS)
            if after_seen and exc is None and name == "epoch":
                assert children == (N_TRAIN if phase_training else N_VALID)
            if after_seen and exc is None and name == "fit": assert children == 2 * n_epochs
            # An error already leaving the scope wins over the cleanup's (which becomes a note on it).
            if exc is not None and not isinstance(exc, tuple(CAUGHT_BY.values())): out = exc
            elif raised is not None: out = raised
            else: out = None if isinstance(exc, CAUGHT_BY[name]) else exc
            if stack:
                if out is not None: stack[-1][1] = out
            else: escaped = out
    assert not stack, f"scopes never closed: {[s[0] for s in stack]}"
    # What the user sees: an error as CallbackError with the original chained; a cancel is never seen.
    if escaped is None: assert outcome is None
    else:
        assert isinstance(escaped, ValueError) and isinstance(outcome, CallbackError)
        assert outcome.original is escaped and outcome.__cause__ is escaped
        assert isinstance(outcome, ValueError)  # the original's class catches it too
        # Nothing silent: every error raised is the one reported or a note on it.
        text = "\n".join([str(outcome), *getattr(outcome, "__notes__", [])])
        for entry in log:
            if entry[0] == "raise" and isinstance(entry[2], ValueError): assert str(entry[2]) in text, (entry, text)


@settings(max_examples=150, deadline=None)
@given(st.lists(raise_points, max_size=4))
def test_event_machine_invariants(points):
    schedule = {(ev, n): kind for ev, n, kind in points}
    trainer, log, outcome = run_fit(schedule)
    check_trace(log, outcome)
    # Callbacks added for the fit are gone, and the same trainer fits again, completely.
    assert [cb.name for cb in trainer.cbs] == ["B", "A", "C"]
    log.clear()
    trainer.fit(1)
    check_trace(log, None, order=("A", "B", "C"), n_epochs=1)
    assert sum(1 for name, ev, _ in log if (name, ev) == ("A", "before_batch")) == N_TRAIN + N_VALID


def test_without_raises_the_trace_is_the_whole_loop():
    trainer, log, outcome = run_fit({})
    check_trace(log, outcome)
    events = [ev for name, ev, _ in log if name == "A"]
    train_batch = ["before_batch", *TRAIN_STEPS, "after_batch", "cleanup_batch"]
    valid_batch = ["before_batch", *VALID_STEPS, "after_batch", "cleanup_batch"]
    epoch = (["before_epoch", *train_batch * N_TRAIN, "after_epoch", "cleanup_epoch",
              "before_epoch", *valid_batch * N_VALID, "after_epoch", "cleanup_epoch"])
    assert events == ["before_fit", *epoch * N_EPOCHS, "after_fit", "cleanup_fit"]


def test_checker_catches_a_broken_machine():
    # The invariants can fail: a trace with after_batch after a raise is rejected.
    trainer, log, outcome = run_fit({("predict", 0): CancelBatchException})
    i = next(i for i, e in enumerate(log) if e[0] == "raise")
    log[i + 1:i + 1] = [(n, "after_batch", True) for n in "ABCD"]
    try: check_trace(log, outcome)
    except AssertionError: return
    raise AssertionError("check_trace accepted after_batch following a raise")


# ---- the toolbox callbacks, on a real model, with checkpoints on disk ----
import os  # noqa: E402
import tempfile  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from AIsaac.all import (ActivationStatsCB, BasicTrainCB, CheckpointCB, CSVLoggerCB, EarlyStoppingCB,  # noqa: E402
                        GradAccumCB, GradClipCB, MetricsCB, ProgressCB, SaveBestCB, TerminateOnNaNCB, read_checkpoint)
from AIsaac.runtime.checkpoint_file import checkpoint_files, non_finite  # noqa: E402

TOOLBOX = {"stats": lambda d: ActivationStatsCB(), "csv": lambda d: CSVLoggerCB(d / "log.csv"),
           "early": lambda d: EarlyStoppingCB(patience=1), "best": lambda d: SaveBestCB(path=d / "best.pt"),
           "accum": lambda d: GradAccumCB(2), "clip": lambda d: GradClipCB(max_norm=1.0),
           "nan": lambda d: TerminateOnNaNCB(every=2), "progress": lambda d: ProgressCB(bars=False)}
KINDS = {"error": ValueError, "interrupt": KeyboardInterrupt, "cancel_batch": CancelBatchException,
         "cancel_epoch": CancelEpochException, "cancel_fit": CancelFitException}


class Fault(Callback):
    """Raises `kind` at the n-th call of `event` (or makes that training loss NaN, for kind 'nan')."""

    order = 5
    observes = EXCLUSIVE_PHASES

    def __init__(self, event, n, kind):
        self.event, self.n, self.kind, self.calls = event, n, kind, 0
        setattr(self, event, self._fire)

    def _fire(self, trainer):
        self.calls += 1
        if self.calls - 1 != self.n: return
        if self.kind == "nan":
            if getattr(trainer, "loss", None) is not None: trainer.loss = trainer.loss * float("nan")
            return
        raise KINDS[self.kind](f"fault at {self.event} #{self.n}")


def toolbox_trainer(folder, names):
    torch.manual_seed(0)
    x = torch.randn(16, 4)
    y = (x[:, 0] > 0).long()
    ds = TensorDataset(x, y)
    dls = DataLoaders(DataLoader(ds, batch_size=4, shuffle=True), DataLoader(ds, batch_size=8))
    cbs = [BasicTrainCB(), MetricsCB(), CheckpointCB(folder / "ckpt", every_n_batches=2, keep=3),
           *(TOOLBOX[n](folder) for n in sorted(names))]
    return Trainer(dls, nn.CrossEntropyLoss(), torch.optim.SGD,
                   nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2)), cbs)


def _in_scope(point) -> bool:
    # As in the test above: a cancel exception only where it means something (its own scope or one inside it).
    event, _, kind = point
    if kind == "cancel_batch": return event in BATCH_EVENTS or event == "get_loss"
    if kind == "cancel_epoch": return event in BATCH_EVENTS or event in ("get_loss", "before_epoch", "after_epoch")
    return True


fault_points = st.tuples(st.sampled_from([e for e in EVENTS if not e.startswith("cleanup")] + ["get_loss"] * 3),
                         st.integers(0, 8), st.sampled_from([*KINDS, "nan"])).filter(_in_scope)


@settings(max_examples=12, deadline=None)
@given(st.sets(st.sampled_from(sorted(TOOLBOX)), max_size=4), st.lists(fault_points, min_size=1, max_size=2))
def test_toolbox_callbacks_survive_random_faults(names, faults):
    # Kept to a few seconds on 2 cores: one thread for the tiny model, and no fsync (it guards against power cuts,
    # which are not what is tested here).
    threads, fsync = torch.get_num_threads(), os.fsync
    torch.set_num_threads(1)
    os.fsync = lambda fd: None
    try: run_toolbox_faults(names, faults)
    finally: torch.set_num_threads(threads); os.fsync = fsync


def run_toolbox_faults(names, faults):
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        folder = Path(tmp)
        trainer = toolbox_trainer(folder, names)
        # Two faults at one event: one callback class per event (the trainer names callbacks by class).
        faults = list({ev: (ev, n, kind) for ev, n, kind in faults}.values())
        fault_cbs = [type(f"Fault{i}", (Fault,), {})(*f) for i, f in enumerate(faults)]
        try: trainer.fit(3, lr=0.1, callbacks=fault_cbs)
        except (ValueError, KeyboardInterrupt) as e:
            # An error comes out as CallbackError (also its own class); an interrupt as itself.
            assert isinstance(e, KeyboardInterrupt) or isinstance(e, CallbackError)
        model = trainer.model
        # No hook left on the model, and the fit-only callbacks are gone.
        assert all(not m._forward_hooks for m in model.modules())
        assert not any(n.startswith("Fault") for n in trainer.named_callbacks)
        # Every checkpoint on disk reads (checksum verified) and holds finite weights.
        files = checkpoint_files(folder / "ckpt") if (folder / "ckpt").exists() else []
        for f in files: assert not non_finite(read_checkpoint(f))
        # The newest good checkpoint resumes, and the trainer can fit again.
        if files:
            resumed = toolbox_trainer(folder, names)
            resumed.fit(3, lr=0.1, resume_from=folder / "ckpt")
            assert all(torch.isfinite(p).all() for p in resumed.model.parameters()) or "nan" in str(faults)
        trainer.fit(1, lr=0.1)
        assert trainer.epoch == 0
