"""`CallbackSet`: the trainer's callbacks as a set: adding and removing them, the plan of what runs at each event
(built once per change, see AIsaac.dispatch), running events, and reaching a callback by its name or class.
`Trainer` inherits it, so these methods are on the Trainer's page and an IDE sees them on a trainer."""
from __future__ import annotations

from types import MappingProxyType
from typing import Any, Callable, Iterable, Mapping, TypeVar

from .dispatch import Plan, PlanWrapper, run_cleanup

_CB = TypeVar("_CB")


class CallbackSet:
    """The callback set of `Trainer` (see there)."""

    _callbacks: Plan
    _methods: Mapping[str, tuple[Callable, ...]]

    # ---- running events ----
    def run_callbacks(self, names: str | Iterable[str]) -> None:
        """Run each event in `names` on the planned callbacks, in order."""
        self._callbacks.run(self, names)

    def run_cleanup(self, name: str, pending: BaseException | None = None) -> None:
        """Run cleanup event `name` on every planned callback, even when some raise (see `dispatch.run_cleanup`)."""
        run_cleanup(self, self._methods[name], name, pending)

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
        self._callbacks, self._methods = plan, plan.methods

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
    def __getattr__(self, name: str) -> Any:
        # Only reached for names that are not attributes: a callback by its class name, else a clear error.
        plan = self.__dict__.get("_callbacks")
        if plan is not None and name in plan.named: return plan.named[name]
        raise AttributeError(f"'{type(self).__name__}' has no attribute or callback '{name}'")

    def callback(self, cls: type[_CB]) -> _CB:
        """The callback of class `cls` on this trainer, typed as that class (`trainer.callback(MetricsCB)`)."""
        found = [cb for cb in self._callbacks.cbs if isinstance(cb, cls)]
        if not found: raise LookupError(f"No {cls.__name__} on this trainer; its callbacks are: "
                                        f"{', '.join(self._callbacks.named) or 'none'}.")
        return found[0]
