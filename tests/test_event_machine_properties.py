"""Property-based tests of the event machine: callbacks raise cancel exceptions and errors at random events, and the
trace of events must keep its invariants (scopes nest and close, after_X runs exactly when nothing was raised in X,
callbacks run in order, an error reaches the user as CallbackError, the trainer can fit again)."""
from hypothesis import given, settings
from hypothesis import strategies as st

from AIsaac.all import (Callback, CallbackError, CancelBatchException, CancelEpochException, CancelFitException,
                        DataLoaders, Trainer)
from AIsaac.events import BATCH_EVENTS, EVENTS, STEP_PHASES

N_EPOCHS, N_TRAIN, N_VALID = 2, 3, 2
CAUGHT_BY = {"batch": CancelBatchException, "epoch": CancelEpochException, "fit": CancelFitException}
TRAIN_STEPS, VALID_STEPS = STEP_PHASES, ("predict", "get_loss")


class FakeModel:
    def train(self, mode=True): self.training = mode
    def parameters(self): return iter(())


class Recorder(Callback):
    def __init__(self, name, log):
        self.name, self.log = name, log
        for ev in EVENTS: setattr(self, ev, self._record(ev))

    def _record(self, ev):
        def f(trainer): self.log.append((self.name, ev, trainer.training))
        return f


def recorder(name, order, log):
    """A Recorder of its own class (the trainer names callbacks by class), with `order`."""
    return type(f"Recorder{name}", (Recorder,), {"order": order})(name, log)


class Raiser(Callback):
    """Raises `schedule[(event, n)]` at the n-th call of `event` (counted from 0)."""

    order = 10

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
                and out[-1][3] is None:
            out[-1][2].append(entry[0])
        else: out.append([entry[1], entry[2], [entry[0]], None])
    return out


def check_trace(log, outcome, order=("A", "B", "C", "D"), n_epochs=N_EPOCHS):
    stack, escaped = [], None  # each open scope: [name, exception propagating in it, after seen, children, training]
    for ev, training, names, raised in calls(log):
        # Order: by `order`, ties in the order added; the callbacks after the raiser are skipped when it raises.
        assert names == list(order if raised is None else order[:3]), (ev, names)
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
            out = raised if raised is not None else (None if isinstance(exc, CAUGHT_BY[name]) else exc)
            if stack:
                if out is not None: stack[-1][1] = out
            else: escaped = out
    assert not stack, f"scopes never closed: {[s[0] for s in stack]}"
    # What the user sees: an error as CallbackError with the original chained; a cancel is never seen.
    if escaped is None: assert outcome is None
    else:
        assert isinstance(escaped, ValueError) and isinstance(outcome, CallbackError)
        assert outcome.original is escaped and outcome.__cause__ is escaped


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
