"""with_cbs, run_callbacks and the dispatch plan."""
import warnings

import pytest

from AIsaac.callback import Callback, flatten_callbacks
from AIsaac.dispatch import build_plan, run_callbacks, with_cbs
from AIsaac.exceptions import CallbackSetupError, CancelBatchException


class Recorder:
    def __init__(self, fail_in=None, cancel_in=None):
        self.log, self.fail_in, self.cancel_in = [], fail_in, cancel_in

    def run_callbacks(self, name):
        self.log.append(name)
        if name == self.cancel_in: raise CancelBatchException()
        if name == self.fail_in: raise KeyError(name)

    @with_cbs('batch', CancelBatchException)
    def work(self, x):
        self.log.append(f"work {x}")
        if self.cancel_in == "work": raise CancelBatchException()


def test_with_cbs_runs_before_function_after_and_cleanup():
    r = Recorder()
    r.work(1)
    assert r.log == ["before_batch", "work 1", "after_batch", "cleanup_batch"]


@pytest.mark.parametrize("where", ["before_batch", "work", "after_batch"])
def test_cancel_skips_the_rest_but_cleanup_runs(where):
    r = Recorder(cancel_in=where)
    r.work(1)
    full = ["before_batch", "work 1", "after_batch"]
    assert r.log == full[:full.index(where if where != "work" else "work 1") + 1] + ["cleanup_batch"]


def test_other_exceptions_propagate_after_cleanup():
    r = Recorder(fail_in="after_batch")
    with pytest.raises(KeyError):
        r.work(2)
    assert r.log[-1] == "cleanup_batch"


def test_with_cbs_keeps_the_function_name():
    assert Recorder.work.__name__ == "work"


class A:
    def __init__(self, calls, tag, order=0): self.calls, self.tag, self.order = calls, tag, order
    def before_fit(self, trainer): self.calls.append((self.tag, trainer))
    def after_fit(self, trainer): self.calls.append((self.tag + "!", trainer))


def test_run_callbacks_sorts_by_order_stably_and_passes_trainer():
    calls = []
    cbs = [A(calls, "late", 3), A(calls, "x"), A(calls, "early", -1), A(calls, "y")]
    run_callbacks(cbs, "before_fit", trainer="T")
    assert calls == [("early", "T"), ("x", "T"), ("y", "T"), ("late", "T")]


def test_run_callbacks_takes_several_events_and_expands_groups():
    calls = []
    group = type("G", (), {})()
    group.callbacks = [A(calls, "inner")]
    run_callbacks([group, A(calls, "outer", 1)], ["before_fit", "after_fit"])
    assert [c for c, _ in calls] == ["inner", "outer", "inner!", "outer!"]


def test_plan_skips_base_class_documentation_methods():
    class OnlyFit(Callback):
        def before_fit(self, trainer): pass
    plan = build_plan([OnlyFit()])
    assert len(plan["before_fit"]) == 1 and all(len(v) == 0 for k, v in plan.items() if k != "before_fit")


def test_plan_claims_take_over_a_phase():
    class Plain:
        def step(self, trainer): pass
    class Claimer:
        claims = ("step",)
        def step(self, trainer): pass
    plain, claimer = Plain(), Claimer()
    plan = build_plan([plain, claimer])
    assert plan["step"] == (claimer.step,)


def test_two_claims_on_one_phase_is_an_error():
    class C1:
        claims = ("backward",)
        def backward(self, trainer): pass
    class C2(C1): pass
    with pytest.raises(CallbackSetupError, match="C1 and C2 both claim the step phase 'backward'"):
        build_plan([C1(), C2()])


def test_a_second_callback_doing_a_phase_without_a_claim_is_warned_and_both_run():
    class Plain:
        def step(self, trainer): pass
    class MyStep:
        def step(self, trainer): pass
    plain, mine = Plain(), MyStep()
    with pytest.warns(UserWarning, match="Plain and MyStep all do the step phase 'step', so it runs 2 times per batch"
                                         ".*claims = \\('step',\\).*observes = \\('step',\\)"):
        plan = build_plan([plain, mine])
    assert plan["step"] == (plain.step, mine.step)
def test_a_yielded_phase_goes_to_the_other_callback_and_is_done_when_alone():
    class Fallback:
        yields = ("step",)
        def step(self, trainer): pass
        def zero_grad(self, trainer): pass
    class Plain:
        def step(self, trainer): pass
    fallback, plain = Fallback(), Plain()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "runs twice" warning: the yielded step is left out
        plan = build_plan([fallback, plain])
    assert plan["step"] == (plain.step,) and plan["zero_grad"] == (fallback.zero_grad,)
    assert build_plan([fallback])["step"] == (fallback.step,)


def test_bad_orders_and_yields_are_setup_errors():
    class NotANumber(Callback): order = "late"
    class BadYield(Callback): yields = ("stepp",)
    with pytest.raises(CallbackSetupError, match="must be a number"): build_plan(flatten_callbacks([NotANumber()]))
    with pytest.raises(CallbackSetupError, match="did you mean 'step'"): build_plan(flatten_callbacks([BadYield()]))
