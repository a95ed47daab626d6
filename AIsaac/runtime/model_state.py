"""The states a checkpoint holds: the model's and the optimizers' (a sharded model's gathered and scattered by
collectives), the callbacks' that have one, and `trainer_state`, all of them with the RNGs and the position."""
from __future__ import annotations

from collections.abc import Collection
from typing import Any

import torch

from ..exceptions import CheckpointError
from .checkpoint_file import FORMAT, checksum
from .distributed import is_sharded
from .rng import get_rng_state, loader_rng_at


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The user's module inside DDP, DataParallel and torch.compile wrappers: the one whose state is saved."""
    while True:
        inner = model.module if isinstance(model, (torch.nn.parallel.DistributedDataParallel, torch.nn.DataParallel)) \
             else getattr(model, "_orig_mod", None)
        if not isinstance(inner, torch.nn.Module): return model
        model = inner


def _full(**kw: Any):
    from torch.distributed.checkpoint.state_dict import StateDictOptions
    return StateDictOptions(full_state_dict=True, cpu_offload=True, **kw)


def saving_model(trainer: Any) -> torch.nn.Module:
    """The unwrapped module whose weights `save`, `export` and SaveBestCB write: `trainer.model_to_save` when a callback
    set it (EMACB(use_for_saving=True): the averaged copy), else the model."""
    chosen = trainer.model_to_save
    return unwrap_model(trainer.model if chosen is None else chosen)


def model_state(model: torch.nn.Module) -> dict[str, Any]:
    """The unwrapped model's state_dict; of a sharded model, the full state (a collective: every process calls it;
    the main process gets the tensors, the others an empty dict)."""
    model = unwrap_model(model)
    if not is_sharded(model): return model.state_dict()
    from torch.distributed.checkpoint.state_dict import get_model_state_dict
    return get_model_state_dict(model, options=_full())


def load_model_state(model: torch.nn.Module, state: dict[str, Any]) -> None:
    """Load a `model_state` into the unwrapped model; a sharded model takes the main process's copy (a collective)."""
    model = unwrap_model(model)
    if not is_sharded(model):
        model.load_state_dict(state)
        return
    from torch.distributed.checkpoint.state_dict import set_model_state_dict
    set_model_state_dict(model, state, options=_full(broadcast_from_rank0=True))


def opt_state(model: torch.nn.Module, opt: Any) -> dict[str, Any] | None:
    """The optimizer's state_dict; for a sharded model, its full state keyed by parameter name (a collective)."""
    if opt is None: return None
    if not is_sharded(unwrap_model(model)): return opt.state_dict()
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict
    return get_optimizer_state_dict(unwrap_model(model), getattr(opt, "optimizer", opt), options=_full())


def load_opt_state(opt: Any, state: dict[str, Any], model: torch.nn.Module | None = None,
                   keep: bool | Collection[str] = (),
                   advice: str = "load it with the opt_func (and splitter) it was saved with") -> None:
    """Load a saved optimizer state (momentum buffers, Adam's moments, step counts, hyperparameters) into `opt`.

    `keep`: the hyperparameters (`'lr'`...; True: all of them) that stay `opt`'s own instead of the saved ones.
    `model`: the model `opt` trains; when it is sharded, `state` is an `opt_state` (the full state keyed by parameter
    name) and loading it is a collective. A state that does not fit `opt` raises CheckpointError ending in `advice`.
    """
    names = () if isinstance(keep, bool) else keep
    kept = [{k: v for k, v in g.items() if k != "params" and (keep is True or k in names)} for g in opt.param_groups]
    try:
        if model is None or not is_sharded(unwrap_model(model)): opt.load_state_dict(state)
        elif not any(isinstance(v, torch.Tensor) for per_param in state["state"].values() for v in per_param.values()):
            # Nothing but hyperparameters (SGD without momentum): torch's loader finds no tensor to take the
            # device from.
            for group, saved in zip(opt.param_groups, state["param_groups"]):
                group.update({k: v for k, v in saved.items() if k != "params"})
        else:
            from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict
            set_optimizer_state_dict(unwrap_model(model), getattr(opt, "optimizer", opt), state,
                                     options=_full(broadcast_from_rank0=True))
    except (ValueError, KeyError) as e:
        raise CheckpointError(f"The saved optimizer state does not fit this optimizer ({e}); {advice}.") from e
    for group, mine in zip(opt.param_groups, kept): group.update(mine)


def stateful_callbacks(trainer: Any) -> dict[str, Any]:
    """The trainer's callbacks that have `state_dict` and `load_state_dict`, by the name the trainer knows them by."""
    return {name: cb for name, cb in trainer.named_callbacks.items()
            if callable(getattr(cb, "state_dict", None)) and callable(getattr(cb, "load_state_dict", None))}


def trainer_state(trainer: Any, epoch: int, batch: int, loader_rng: dict | None,
                  processes: list[dict[str, Any]] | None = None, fetch_rng: dict | None = None,
                  with_checksum: bool = True, rng: dict | None = None, weights: bool = True) -> dict[str, Any]:
    """Everything needed to continue `trainer`'s fit `batch` batches into epoch `epoch` (see `checkpoint_file`).

    `processes`: each process's {rng, loader_rng, fetch_rng} (from `trainer.gather_object`) when several train
    together. `fetch_rng`: see `checkpoint_file`. The model and optimizer states of a sharded model are gathered
    by collectives: every process calls this. `with_checksum=False` leaves the checksum to the writer; `rng`: the RNG
    states to save (None: this moment's); `weights=False`: without the model's and optimizers' states (a sharded
    checkpoint writes them apart, see `sharded_checkpoint`), and no collective.
    """
    state = {"format": FORMAT,
             "position": {"epoch": epoch, "batch": batch,
                          "loader_rng": loader_rng_at(loader_rng, batch) if batch else None,
                          "fetch_rng": fetch_rng if batch else None, "n_epochs": trainer.n_epochs,
                          "step": trainer.step},
             **({"model": model_state(trainer.model),
                 "opts": {name: opt_state(trainer.model, opt) for name, opt in trainer.opts.items()}} if weights else {}),
             "callbacks": {name: cb.state_dict() for name, cb in stateful_callbacks(trainer).items()},
             "rng": rng if rng is not None else get_rng_state(),
             "processes": [{"rng": p["rng"], "loader_rng": loader_rng_at(p["loader_rng"], batch) if batch else None,
                            "fetch_rng": p.get("fetch_rng") if batch else None} for p in processes]
             if processes and len(processes) > 1 else None}
    if trainer.setup is not None: state["setup"] = trainer.setup
    if with_checksum: state["checksum"] = checksum(state)
    return state


def apply_opt_states(opts: dict[str, torch.optim.Optimizer], saved: dict[str, Any], source: Any = "the file") -> None:
    """Load `saved` (optimizer states by name; or one state) into the optimizers `opts` by name, each keeping its own
    hyperparameters; one state and one optimizer pair up whatever their names."""
    if "param_groups" in saved: saved = {"opt": saved}  # one optimizer's state_dict
    if len(saved) == 1 and len(opts) == 1: saved = {next(iter(opts)): next(iter(saved.values()))}
    if set(saved) != set(opts):
        raise CheckpointError(f"{source} holds the states of optimizers {sorted(saved)}, but the trainer has "
                              f"{sorted(opts)}; load with the opt_func it was saved with, or pass with_opt=False to "
                              f"load only the weights.")
    for name, opt in opts.items():
        load_opt_state(opt, saved[name], keep=True, advice="load with the opt_func and model it was saved with, or pass "
                       "with_opt=False to load only the weights")  # each keeps the fit's own lr and hyperparameters
