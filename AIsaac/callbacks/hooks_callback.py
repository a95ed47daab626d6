"""`HooksCallback`: a forward hook on chosen modules of the trainer's model for the length of each fit."""
from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator

from torch import nn

from ..callback import Callback
from ..models.hooks import Hook, HookFunc, Hooks, records_to_cpu


def all_modules(module: nn.Module) -> bool:
    """The default module filter: every module."""
    return True


def _module_label(name: str, module: nn.Module) -> str:
    """How a module is named in records and plots: its path in the model and its class (`'1 ReLU'`; the root by its class)."""
    return f"{name} {type(module).__name__}" if name else type(module).__name__


class HooksCallback(Callback):
    '''Puts `Hook(module, hookfunc)` on modules of the trainer's model at each fit, and takes them off at its end

    The modules are `modules` if given, else every module of `trainer.model` for which `module_filter(module)` is
    truthy (default: all). `hookfunc(hook, module, inputs, output)` runs in training batches (`on_train`) and/or
    validation batches (`on_valid`), and keeps its records on the hook (`append_stats` fills `hook.stats` on the
    device, without a sync). Once per epoch, and at the end of the fit, `flush` moves every hook's `stats` to the
    CPU (one copy per list). The hooks come off in `cleanup_fit`, so also when the fit fails or is cancelled.
    Iterate the callback for its hooks (`for h in cb: get_hist(h)`); `names` labels them.
    '''

    def __init__(self, hookfunc: HookFunc, module_filter: Callable[[nn.Module], Any] = all_modules,
                 on_train: bool = True, on_valid: bool = False, modules: Iterable[nn.Module] | None = None):
        if not callable(hookfunc):
            raise TypeError(f"{type(self).__name__}: hookfunc must be callable as hookfunc(hook, module, inputs, "
                            f"output), like append_stats; got {type(hookfunc).__name__}.")
        if not callable(module_filter) or isinstance(module_filter, nn.Module):
            raise TypeError(f"{type(self).__name__}: module_filter must be callable as module_filter(module) -> bool "
                            f"(to hook given modules, pass modules=[...]); got {type(module_filter).__name__}.")
        if modules is not None:
            modules = [modules] if isinstance(modules, nn.Module) else list(modules)
            bad = [type(m).__name__ for m in modules if not isinstance(m, nn.Module)]
            if bad: raise TypeError(f"{type(self).__name__}: modules must be torch.nn.Modules; got {bad[0]}.")
        self.hookfunc, self.module_filter, self.on_train, self.on_valid = hookfunc, module_filter, on_train, on_valid
        self.modules = modules
        self.hooks: Hooks = Hooks([], hookfunc)
        self.names: list[str] = []
        self.active = False  # whether the hooks record now (set at each batch)

    def __iter__(self) -> Iterator[Hook]: return iter(self.hooks)
    def __len__(self) -> int: return len(self.hooks)
    def __getitem__(self, i: int) -> Hook: return self.hooks[i]

    def _chosen(self, model: nn.Module) -> list[tuple[str, nn.Module]]:
        named = list(model.named_modules())
        if self.modules is None: return [(_module_label(n, m), m) for n, m in named if self.module_filter(m)]
        labels = {id(m): _module_label(n, m) for n, m in named}
        return [(labels.get(id(m), type(m).__name__), m) for m in self.modules]

    def before_fit(self, trainer):
        self.remove_hooks()
        chosen = self._chosen(trainer.model)
        self.names = [n for n, _ in chosen]
        self.active = False
        hookfunc = self.hookfunc

        # A plain closure, not a bound method: restoring(trainer) copies callbacks' attributes, and a copied
        # bound method would copy this callback with it.
        def record(hook: Hook, module: nn.Module, inputs: tuple, output: Any, cb: HooksCallback = self) -> None:
            if cb.active: hookfunc(hook, module, inputs, output)
        self.hooks = Hooks([m for _, m in chosen], record)

    def before_batch(self, trainer): self.active = self.on_train if trainer.training else self.on_valid

    def before_epoch(self, trainer): self.active = False

    def cleanup_epoch(self, trainer):
        self.active = False
        self.flush()

    def cleanup_fit(self, trainer):
        self.active = False
        try: self.flush()
        finally: self.remove_hooks()

    def flush(self) -> None:
        """Move what the hooks recorded to the CPU (called once per epoch and at the end of the fit)."""
        for hook in self.hooks:
            if getattr(hook, "stats", None) is not None: hook.stats = records_to_cpu(hook.stats)

    def remove_hooks(self) -> None:
        """Take every hook off its module (the records stay on the hooks)."""
        self.hooks.remove()
