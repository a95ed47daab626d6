"""AccelerateStopCB, AccelerateCB's last member: it marks phases and fits that ended normally, votes at the start of a
phase and before a forward (through its owner), raises a stop agreed elsewhere once, at the end of a cleanup event;
and `runs_base_method`, which tells whether a subclass's override still reaches AccelerateCB's own."""
import pytest

from AIsaac.all import AccelerateCB, CancelFitException
from AIsaac.callbacks.accelerate_stop import AccelerateStopCB, runs_base_method


class Owner:
    def __init__(self): self.pending, self.epoch_done, self.fit_done, self.calls = None, False, False, []
    def _begin_phase(self): self.calls.append("phase")
    def _vote_before_forward(self): self.calls.append("forward")


def test_it_marks_normal_ends_votes_through_its_owner_and_raises_a_pending_stop_once():
    owner = Owner()
    cb = AccelerateStopCB(owner)  # type: ignore[arg-type]
    assert cb.order > AccelerateCB.order  # last: the other callbacks clean up first
    cb.before_epoch(None); cb.before_batch(None)
    assert owner.calls == ["phase", "forward"]
    cb.after_epoch(None); cb.after_fit(None)
    assert owner.epoch_done and owner.fit_done
    cb.cleanup_batch(None)  # nothing pending: nothing raised
    owner.pending = CancelFitException()
    with pytest.raises(CancelFitException): cb.cleanup_epoch(None)
    assert owner.pending is None
    cb.cleanup_fit(None)


def test_an_override_reaches_the_base_method_only_when_it_calls_it():
    class Calls(AccelerateCB):
        def before_fit(self, trainer): super().before_fit(trainer)

    class Replaces(AccelerateCB):
        def before_fit(self, trainer): self.acc = None

    class Below(Replaces):
        def before_fit(self, trainer): super().before_fit(trainer)

    assert runs_base_method(AccelerateCB, AccelerateCB, "before_fit")
    assert runs_base_method(Calls, AccelerateCB, "before_fit")
    assert not runs_base_method(Replaces, AccelerateCB, "before_fit")
    assert not runs_base_method(Below, AccelerateCB, "before_fit")  # the override it reaches does not call on
