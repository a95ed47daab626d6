"""`CallbackSet`: the trainer's callbacks as a set: adding and removing them, the plan of what runs at each event
(built once per change, see AIsaac.dispatch), running events, and reaching a callback by its name or class.
`Trainer` inherits it, so these methods are on the Trainer's page and an IDE sees them on a trainer."""
from __future__ import annotations

from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, TypeVar

from .dispatch import Plan, PlanWrapper, raise_from_callback, run_cleanup

if TYPE_CHECKING:
    from . import all as _all

_CB = TypeVar("_CB")


class CallbackSet:
    """The callback set of `Trainer` (see there)."""

    _callbacks: Plan
    _methods: Mapping[str, tuple[Callable, ...]]
    _calls: Mapping[Any, tuple[tuple[str, Callable], ...]]  # the plan's (event, method) pairs, what run_callbacks runs
    _planned_cleanups: frozenset[str]  # the cleanup events with a method (with_cbs skips the rest)

    if TYPE_CHECKING:
        # What a type checker sees of `trainer.<Name>`: each callback AIsaac ships, typed as its class (a callback
        # of yours: `trainer.callback(MyCB)`); the attributes `_set_plan` sets are invisible to it.
        # tests/test_typing.py keeps this list equal to the callbacks AIsaac.all exports.
        AccelerateCB: _all.AccelerateCB; ActivationStatsCB: _all.ActivationStatsCB
        BaseSchedulerCB: _all.BaseSchedulerCB; BasicTrainCB: _all.BasicTrainCB
        BatchAugmentationCB: _all.BatchAugmentationCB; BatchSchedulerCB: _all.BatchSchedulerCB
        BatchTransformCB: _all.BatchTransformCB; CheckpointCB: _all.CheckpointCB; CompileCB: _all.CompileCB
        CoreCBs: _all.CoreCBs; CSVLoggerCB: _all.CSVLoggerCB; CudaGraphCB: _all.CudaGraphCB; CutMixCB: _all.CutMixCB
        DeviceCB: _all.DeviceCB; EarlyStoppingCB: _all.EarlyStoppingCB; EMACB: _all.EMACB
        EpochSchedulerCB: _all.EpochSchedulerCB; FitSchedulerCB: _all.FitSchedulerCB; FrozenModulesCB: _all.FrozenModulesCB
        GradAccumCB: _all.GradAccumCB
        GradClipCB: _all.GradClipCB; HooksCallback: _all.HooksCallback; LoggerCB: _all.LoggerCB
        LRFinderCB: _all.LRFinderCB; MetricsCB: _all.MetricsCB; MixedPrecisionCB: _all.MixedPrecisionCB
        MixUpCB: _all.MixUpCB; MLflowLoggerCB: _all.MLflowLoggerCB; MomentumTrainCB: _all.MomentumTrainCB
        MonitorCB: _all.MonitorCB; OneBatchCB: _all.OneBatchCB; OneCycleSchedulerCB: _all.OneCycleSchedulerCB
        OptunaPruningCB: _all.OptunaPruningCB; ProfileCB: _all.ProfileCB; ProgressCB: _all.ProgressCB
        ReduceLROnPlateauCB: _all.ReduceLROnPlateauCB; SaveBestCB: _all.SaveBestCB; SWACB: _all.SWACB
        TensorBoardCB: _all.TensorBoardCB; TerminateOnNaNCB: _all.TerminateOnNaNCB; ThroughputCB: _all.ThroughputCB
        WandbLoggerCB: _all.WandbLoggerCB
        WarmupCosineSchedulerCB: _all.WarmupCosineSchedulerCB

    # ---- running events ----
    def run_callbacks(self, names: str | Iterable[str]) -> None:
        """Run each event in `names` on the planned callbacks, in order; a callback's error is raised with the
        callback, the event and where in the fit (`CallbackError`), the cancel exceptions as they are."""
        try: calls = self._calls[names]
        except (KeyError, TypeError): calls = self._callbacks.calls_for(names)
        for name, method in calls:
            try: method(self)
            except BaseException as e: raise_from_callback(self, method, name, e)

    def run_cleanup(self, name: str, pending: BaseException | None = None) -> None:
        """Run cleanup event `name` on every planned callback, even when some raise (see `dispatch.run_cleanup`)."""
        methods = self._methods[name]
        if methods: run_cleanup(self, methods, name, pending)

    # ---- the set: changed rarely, planned once per change ----
    def add_callbacks(self, callbacks: Any | Iterable[Any], force: bool = False) -> list[Any]:
        """Add callbacks (groups expanded recursively); returns the callbacks actually added.

        A callback whose class name is taken is an error unless `force`, which adds it as `Name_2`, `Name_3`, ...
        """
        plan, new = self._callbacks.added(callbacks, force, self)
        self._set_plan(plan)
        return new

    def remove_callbacks(self, callbacks: Any | Iterable[Any]) -> None:
        """Remove callbacks (and, for a group, its members)."""
        self._set_plan(self._callbacks.removed(callbacks))

    def wrap_plan(self, wrapper: PlanWrapper | None) -> None:
        """Run every planned method through `wrapper(event, callback_name, method)` (a timer, say) from now on, also
        after the plan is rebuilt when callbacks change; `None` runs the methods themselves again."""
        self._set_plan(self._callbacks.wrapped(wrapper))

    def _set_plan(self, plan: Plan) -> None:
        # Each callback is an attribute of the trainer under its name (`trainer.MetricsCB`), set here when the set
        # changes. Not a `__getattr__`: a class with one has every attribute read the slow way, in every callback,
        # at every batch. A name that would hide the trainer's own attribute is refused when the callback is added.
        old = getattr(self, "_callbacks", None)
        if old is not None:
            for name, cb in old.named.items():
                if plan.named.get(name) is not cb and getattr(self, name, None) is cb: delattr(self, name)
        for name, cb in plan.named.items(): setattr(self, name, cb)
        self._callbacks, self._methods, self._calls, self._planned_cleanups = plan, plan.methods, plan.calls, plan.cleanups

    @property
    def cbs(self) -> list[Any]:
        """The callbacks, in the order added (a copy: change them with add_callbacks / remove_callbacks)."""
        return list(self._callbacks.cbs)

    @property
    def named_callbacks(self) -> Mapping[str, Any]:
        """The callbacks by the name they are reachable by (`trainer.<name>`), read-only."""
        return MappingProxyType(self._callbacks.named)

    @property
    def plan(self) -> Mapping[str, tuple[Callable, ...]]:
        """For each event, the methods that run there, in order (claims applied), read-only."""
        return MappingProxyType(self._methods)

    # ---- reaching one callback ----
    # By its name, `trainer.<Name>`: an attribute, set by `_set_plan` (a misspelt name is Python's AttributeError,
    # with its "Did you mean" from the names that are there). By its class, typed as that class:
    def callback(self, cls: type[_CB]) -> _CB:
        """The callback of class `cls` on this trainer, typed as that class (`trainer.callback(MetricsCB)`)."""
        found = [cb for cb in self._callbacks.cbs if isinstance(cb, cls)]
        if not found: raise LookupError(f"No {cls.__name__} on this trainer; its callbacks are: "
                                        f"{', '.join(self._callbacks.named) or 'none'}.")
        return found[0]
