"""Checkpoint files: what goes in one, writing it atomically, reading it without running code, restoring a trainer.

A checkpoint is a dict of tensors and plain values (so `torch.load(weights_only=True)` reads it):
  format, position {epoch, batch, loader_rng, fetch_rng, n_epochs}, model, opts {name: optimizer state_dict},
  callbacks {name: state_dict}, rng, processes, setup (what the fit was started with, see `fit_setup`; compared when
  resuming), and checksum (a SHA-256 of all the rest, checked on load: a flipped bit anywhere in it is an error).
`position` means: `batch` batches of epoch `epoch`'s train phase are done (0: the epoch has not started);
`loader_rng` is the state that replays that epoch's shuffle (None when `batch` is 0).
`model` is the user's module's state (no DDP `module.` prefix; a sharded model's full state), so it loads into the
bare model in one process. `processes` is None for a one-process fit; from a fit of N processes it lists each
process's {rng, loader_rng} by process index (`rng` and `position` hold the main process's, process 0), and
`position.batch` counts each process's batches. For a loader that loads a batch ahead (Accelerate's), `fetch_rng`
(in `position`, and per process) is the RNG state its next batch was loaded with (None when not needed).

Resuming a checkpoint of N processes: on N processes, each takes its own RNG states back, so the run continues
exactly as it would have. On another number (one process, say), only a checkpoint at an epoch boundary (batch 0)
resumes: the weights, optimizer and callbacks load, the RNGs are process 0's, and training continues at the next
epoch; a mid-epoch one is refused, since its batches were dealt out to N processes.
"""
from __future__ import annotations

import contextlib
import hashlib
import math
import os
import warnings
import pickle
import re
import tempfile
import zipfile
from pathlib import Path
from typing import IO, Any, Callable, Iterable

import torch

from ..exceptions import CheckpointError
from .distributed import is_sharded
from .rng import get_rng_state, loads_ahead, set_loader_rng_state, set_rng_state

FORMAT = "AIsaac checkpoint 1"
_NAME = re.compile(r"checkpoint-e(\d+)-b(\d+)(?:-([0-9a-f]+))?\.pt")


def checkpoint_name(epoch: int, batch: int, run_id: str | None = None) -> str:
    """The file name for a checkpoint at `batch` batches into epoch `epoch` of the run `run_id`."""
    return f"checkpoint-e{epoch}-b{batch}" + (f"-{run_id}" if run_id else "") + ".pt"


def checkpoint_files(folder: str | os.PathLike, run_id: str | None = None) -> list[Path]:
    """The checkpoints in `folder` (only run `run_id`'s, if given), oldest first (by time written, then position)."""
    found = [(p.stat().st_mtime_ns, int(m[1]), int(m[2]), p) for p in Path(folder).glob("checkpoint-e*-b*.pt")
             if (m := _NAME.fullmatch(p.name)) and (run_id is None or m[3] == run_id)]
    return [p for *_, p in sorted(found)]


def latest_checkpoint(folder: str | os.PathLike) -> Path:
    """The newest checkpoint in `folder`."""
    files = checkpoint_files(folder)
    if not files:
        raise FileNotFoundError(f"No checkpoint in {folder}: CheckpointCB writes files named checkpoint-e<epoch>-"
                                f"b<batch>[-<run>].pt there; pass one of them or the folder that holds them.")
    return files[-1]


def _plain(v: Any) -> Any:
    """A hyperparameter as plain values that survive a save and a `weights_only` load unchanged (tuples as lists)."""
    if isinstance(v, torch.Tensor): return v.tolist()
    if isinstance(v, (tuple, list)): return [_plain(x) for x in v]
    if isinstance(v, dict): return {k: _plain(x) for k, x in v.items()}
    return v


def fit_setup(trainer: Any, n_epochs: int, opt: Any, fit_only: Iterable[Any] = ()) -> dict[str, Any]:
    """What a fit is started with, compared when resuming: n_epochs, the train loader's batch size and length, the
    optimizer's class and its param groups' hyperparameters (as built, before any schedule), and the names of the
    trainer's callbacks (those added for this fit only, `fit_only`, are left out: a checkpoint or a stop added to one
    fit need not be there when it resumes; callbacks with state are compared anyway, see check_callback_states)."""
    skip = {id(cb) for cb in fit_only}
    train: Any = getattr(trainer.dls, "train", None)
    try: n_batches = len(train)
    except TypeError: n_batches = None
    return {"n_epochs": n_epochs, "batch_size": getattr(train, "batch_size", None), "train_batches": n_batches,
            "opt": f"{type(opt).__module__}.{type(opt).__qualname__}",
            "hparams": [{k: _plain(v) for k, v in g.items() if k != "params"} for g in getattr(opt, "param_groups", ())],
            "callbacks": sorted(n for n, cb in trainer.named_callbacks.items() if id(cb) not in skip)}


CHANGES = ("n_epochs", "batch_size", "lr", "opt", "callbacks")


def check_setup(saved: dict[str, Any], setup: dict[str, Any], allow: Any = (), source: Any = "the checkpoint") -> None:
    """Raise CheckpointError listing how `setup` differs from the `saved` one, except the kinds named in `allow`."""
    allow = {allow} if isinstance(allow, str) else set(allow)
    if unknown := allow - set(CHANGES):
        raise ValueError(f"allow_changes names {sorted(unknown)}; it takes any of {', '.join(CHANGES)}.")
    diffs = []

    def differ(kind: str, what: str, old: Any, new: Any) -> None:
        if old != new and kind not in allow: diffs.append((kind, f"{what}: saved {old!r}, now {new!r}"))

    differ("n_epochs", "n_epochs", saved["n_epochs"], setup["n_epochs"])
    differ("batch_size", "batch size", saved["batch_size"], setup["batch_size"])
    differ("batch_size", "batches per epoch", saved["train_batches"], setup["train_batches"])
    differ("opt", "optimizer", saved["opt"], setup["opt"])
    if saved["opt"] == setup["opt"]:  # another class has other hyperparameters: the class is the difference
        old, new = saved["hparams"], setup["hparams"]
        if len(old) != len(new): differ("opt", "number of param groups", len(old), len(new))
        for i, (a, b) in enumerate(zip(old, new)):
            for k in sorted(set(a) | set(b)):
                differ("lr" if k == "lr" and "opt" not in allow else "opt", f"param group {i} {k}", a.get(k), b.get(k))
    if saved["callbacks"] != setup["callbacks"] and "callbacks" not in allow:
        gone, new = sorted(set(saved["callbacks"]) - set(setup["callbacks"])), \
            sorted(set(setup["callbacks"]) - set(saved["callbacks"]))
        diffs.append(("callbacks", "callbacks: " + "; ".join(
            ([f"missing {', '.join(gone)}"] if gone else []) + ([f"new {', '.join(new)}"] if new else []))))
    if diffs:
        kinds = sorted({k for k, _ in diffs})
        raise CheckpointError(f"This fit is not set up like the run that saved {source}, so resuming would not "
                              f"continue that run: " + "; ".join(d for _, d in diffs) + ". Resume with the same "
                              f"setup, or, if the change is meant, pass allow_changes={tuple(kinds)!r}. Nothing was "
                              f"changed.")


def _digest(obj: Any, h: Any) -> None:
    """Feed `obj` (nested dicts, lists and tensors of a checkpoint) into the hash `h`, in a fixed order."""
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(obj, dict):
        h.update(b"D%d" % len(obj))
        for k in sorted(obj, key=repr):
            h.update(repr(k).encode())
            _digest(obj[k], h)
    elif isinstance(obj, (list, tuple)):
        h.update(b"L%d" % len(obj))
        for v in obj: _digest(v, h)
    else: h.update(f"V{type(obj).__name__}{obj!r}".encode())


def checksum(state: dict[str, Any]) -> str:
    """The SHA-256 of everything in a checkpoint but its own `checksum` entry."""
    h = hashlib.sha256()
    _digest({k: v for k, v in state.items() if k != "checksum"}, h)
    return h.hexdigest()


def non_finite(state: dict[str, Any]) -> list[str]:
    """The names of the model tensors in a checkpoint holding NaN or infinity."""
    return [k for k, v in state["model"].items()
            if isinstance(v, torch.Tensor) and v.is_floating_point() and not bool(torch.isfinite(v).all())]


def stateful_callbacks(trainer: Any) -> dict[str, Any]:
    """The trainer's callbacks that have `state_dict` and `load_state_dict`, by the name the trainer knows them by."""
    return {name: cb for name, cb in trainer.named_callbacks.items()
            if callable(getattr(cb, "state_dict", None)) and callable(getattr(cb, "load_state_dict", None))}


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


def load_opt_state(model: torch.nn.Module, opt: Any, state: dict[str, Any]) -> None:
    if not is_sharded(unwrap_model(model)):
        opt.load_state_dict(state)
        return
    if not any(isinstance(v, torch.Tensor) for per_param in state["state"].values() for v in per_param.values()):
        # Nothing but hyperparameters (SGD without momentum): torch's loader finds no tensor to take the device from.
        for group, saved in zip(opt.param_groups, state["param_groups"]):
             group.update({k: v for k, v in saved.items() if k != "params"})
        return
    from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict
    set_optimizer_state_dict(unwrap_model(model), getattr(opt, "optimizer", opt), state,
                              options=_full(broadcast_from_rank0=True))


def trainer_state(trainer: Any, epoch: int, batch: int, loader_rng: dict | None,
                   processes: list[dict[str, Any]] | None = None, fetch_rng: dict | None = None) -> dict[str, Any]:
    """Everything needed to continue `trainer`'s fit `batch` batches into epoch `epoch` (see the module docstring).

    `processes`: each process's {rng, loader_rng, fetch_rng} (from `trainer.gather_object`) when several train
    together. `fetch_rng`: see the module docstring. The model and optimizer states of a sharded model are gathered
    by collectives: every process calls this.
    """
    state = {"format": FORMAT,
             "position": {"epoch": epoch, "batch": batch, "loader_rng": loader_rng if batch else None,
                          "fetch_rng": fetch_rng if batch else None, "n_epochs": trainer.n_epochs},
             "model": model_state(trainer.model),
             "opts": {name: opt_state(trainer.model, opt) for name, opt in trainer.opts.items()},
             "callbacks": {name: cb.state_dict() for name, cb in stateful_callbacks(trainer).items()},
             "rng": get_rng_state(),
             "processes": [{"rng": p["rng"], "loader_rng": p["loader_rng"] if batch else None,
                            "fetch_rng": p.get("fetch_rng") if batch else None} for p in processes]
             if processes and len(processes) > 1 else None}
    if getattr(trainer, "setup", None) is not None: state["setup"] = trainer.setup
    state["checksum"] = checksum(state)
    return state


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike,
                    write: Callable[[dict[str, Any], IO[bytes]], Any] | None = None) -> Path:
    """Write `state` to `path` atomically with `write(state, file)` (torch.save by default): a crash while writing
    leaves whatever was at `path` before intact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The temporary file is in the same folder: os.replace is atomic only within one file system.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            (write or torch.save)(state, f)
            f.flush()
            os.fsync(f.fileno())  # the bytes are on disk before the name points at them
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError): os.unlink(tmp)
        raise
    if os.name == "posix":  # make the rename itself survive a power cut
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try: os.fsync(dir_fd)
        finally: os.close(dir_fd)
    return path


def remove_stale_temp_files(folder: str | os.PathLike) -> None:
    """Delete temporary files left by a save that was killed midway."""
    for p in Path(folder).glob(".checkpoint-e*-b*.pt.*.tmp"):
        with contextlib.suppress(FileNotFoundError): p.unlink()


def read_checkpoint(path: str | os.PathLike, trainer: Any = None, setup: dict[str, Any] | None = None,
                    allow_changes: Any = ()) -> dict[str, Any]:
    """Load a checkpoint file (or the newest one in a folder whose weights are all finite) without running code from
    it and verify its checksum; with `trainer`, check that it fits its model and callbacks, and with `setup` (see
    `fit_setup`) that the fit is set up as the saved one was, except for the kinds in `allow_changes`."""
    path = Path(path)
    if path.is_dir():
        for file in reversed(checkpoint_files(path)):
            state = load_checkpoint_file(file)
            if not (bad := non_finite(state)): break
            warnings.warn(f"Skipped {file}: its weights hold NaN or infinity ({_listed(bad, 3)}); resuming from the "
                          f"newest finite checkpoint before it.", RuntimeWarning, stacklevel=3)
        else:
            latest_checkpoint(path)  # raises FileNotFoundError when there is no checkpoint at all
            raise CheckpointError(f"Every checkpoint in {path} holds NaN or infinity in its weights; none can resume.")
    else: state = load_checkpoint_file(path)
    if trainer is not None:
        check_model_state(state["model"], trainer.model, path)
        if setup is not None and "setup" in state:
            check_setup(state["setup"], setup, allow_changes, path)
            if "callbacks" not in ({allow_changes} if isinstance(allow_changes, str) else set(allow_changes)):
                check_callback_states(state["callbacks"], trainer, path)
        else: check_callback_states(state["callbacks"], trainer, path)
    state["allow_changes"] = allow_changes
    return state


def load_checkpoint_file(path: Path) -> dict[str, Any]:
    """One checkpoint file, loaded without running code from it, its format and checksum verified."""
    if path.is_file() and not zipfile.is_zipfile(path):  # torch.save writes zip archives; a cut-off one is not one
        raise CheckpointError(f"{path} is not a readable checkpoint (truncated or corrupt?): not a torch.save archive.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(f"{path} holds objects other than tensors and plain values, so it is not loaded "
                              f"(loading would run code from the file). Only load files you trust, and give callbacks "
                              f"state_dicts of tensors, numbers, strings, lists and dicts.") from e
    except (RuntimeError, EOFError) as e:
        raise CheckpointError(f"{path} is not a readable checkpoint (truncated or corrupt?): {e}") from e
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an AIsaac checkpoint (written by CheckpointCB); to load bare weights "
                              f"use model.load_state_dict(torch.load(path, weights_only=True)).")
    if "checksum" in state and checksum(state) != state["checksum"]:
        raise CheckpointError(f"{path} is corrupt: its contents do not match the checksum stored in it (a changed "
                              f"byte on disk or in transfer). Resume from another checkpoint.")
    return state


def _listed(keys: list[str], limit: int = 8) -> str:
    return ", ".join(keys[:limit]) + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def check_model_state(saved: dict[str, torch.Tensor], model: torch.nn.Module, source: Any = "the checkpoint") -> None:
    """Raise CheckpointError naming the missing, unexpected and mis-shaped keys when `saved` does not fit `model`."""
    own = unwrap_model(model).state_dict()
    problems = []
    if missing := [k for k in own if k not in saved]: problems.append(f"missing keys: {_listed(missing)}")
    if unexpected := [k for k in saved if k not in own]: problems.append(f"unexpected keys: {_listed(unexpected)}")
    shapes = [f"{k} (saved {tuple(saved[k].shape)}, model {tuple(v.shape)})" for k, v in own.items()
              if isinstance(v, torch.Tensor) and isinstance(saved.get(k), torch.Tensor) and saved[k].shape != v.shape]
    if shapes: problems.append(f"shape mismatch: {_listed(shapes)}")
    if problems:
        raise CheckpointError(f"{source} was saved from a different model: " + "; ".join(problems) +
                              ". Resume with the same architecture and sizes as the run that saved it.")


def check_callback_states(saved: dict[str, Any], trainer: Any, source: Any = "the checkpoint") -> None:
    """Raise CheckpointError when the checkpoint and the trainer disagree on which callbacks have state."""
    own = stateful_callbacks(trainer)
    lacking, new = [n for n in saved if n not in own], [n for n in own if n not in saved]
    if lacking:
        raise CheckpointError(f"{source} holds state for callbacks this trainer lacks: {_listed(lacking)}; add them "
                              f"(the same kinds, e.g. the scheduler) before resuming, or the run would not continue "
                              f"as it was.")
    if new:
        raise CheckpointError(f"This trainer has callbacks with state that {source} does not hold: {_listed(new)}; "
                              f"resume with the callbacks the run was saved with, then add new ones in a later fit.")


def _process_rng(trainer: Any, state: dict[str, Any]) -> tuple[dict, dict | None, dict | None]:
    """This process's (rng, loader_rng, fetch_rng) from `state`; see the module docstring for another number of
    processes."""
    pos, processes = state["position"], state.get("processes")
    saved, now = len(processes) if processes else 1, trainer.num_processes
    if saved == now and processes:
        mine = processes[trainer.process_index]
        return mine["rng"], mine["loader_rng"], mine.get("fetch_rng")
    if saved != now and pos["batch"]:
        raise CheckpointError(f"The checkpoint was saved {pos['batch']} batches into epoch {pos['epoch']} by a fit of "
                              f"{saved} process(es), whose batches were dealt out among them; it resumes mid-epoch "
                              f"only on {saved} process(es) (this fit has {now}). Resume on {saved}, or from a "
                              f"checkpoint at an epoch boundary (checkpoint-e<epoch>-b0.pt), which any number can.")
    return state["rng"], pos["loader_rng"], pos.get("fetch_rng")


def restore_checkpoint(trainer: Any, state: dict[str, Any]) -> None:
    """Load `state` into the trainer's model, optimizer, callbacks and RNGs, and set where its fit continues."""
    rng, loader_rng, fetch_rng = _process_rng(trainer, state)  # checked first: a refused resume changes nothing
    # The optimizers next: torch checks their groups before changing anything, so a refusal leaves the model as it was.
    # Files from before several optimizers held the one optimizer's state under "opt".
    saved = state["opts"] if "opts" in state else {"opt": state["opt"]} if state.get("opt") is not None else {}
    opts = trainer.opts
    if set(saved) != set(opts):
        raise CheckpointError(f"The checkpoint holds optimizers {sorted(saved)} but this fit has {sorted(opts)}; "
                              f"resume with the opt_func the run was saved with.")
    allowed = state.get("allow_changes", ())
    allowed = {allowed} if isinstance(allowed, str) else set(allowed)
    for name, saved_opt in saved.items():
        opt = opts[name]
        fresh = [dict(g) for g in opt.param_groups]
        try: load_opt_state(trainer.model, opt, saved_opt)
        except (ValueError, KeyError) as e:
            raise CheckpointError(f"The checkpoint's optimizer state does not fit optimizer {name!r} ({e}); resume with "
                                  f"the opt_func (and splitter) the run was saved with.") from e
        # An allowed change of hyperparameters is a change: the new values replace the saved ones.
        for group, new in zip(opt.param_groups, fresh):
            for k, v in new.items():
                if k != "params" and ("opt" in allowed or (k == "lr" and "lr" in allowed)): group[k] = v
    load_model_state(trainer.model, state["model"])
    callbacks = stateful_callbacks(trainer)
    for name, cb_state in state["callbacks"].items():
        if name in callbacks: callbacks[name].load_state_dict(cb_state)
    set_rng_state(rng)
    pos = state["position"]
    trainer.epoch, trainer.epochs = pos["epoch"], range(min(pos["epoch"], trainer.n_epochs), trainer.n_epochs)
    trainer.resume_at = {**pos, "loader_rng": loader_rng, "fetch_rng": fetch_rng, "rng": rng} if pos["batch"] else None


_END = object()


def _too_short(done: int, n: int) -> CheckpointError:
    return CheckpointError(f"The checkpoint was saved {done} batches into an epoch, but the train loader now has only "
                           f"{n}; resume with the same data and batch size.")


def replay_batches(dl: Any, resume: dict[str, Any]) -> Iterable[tuple[int, Any]]:
    """`enumerate(dl)` continued from a checkpoint: the interrupted pass's order, its first `resume['batch']` batches
    skipped, and then the RNGs as they were at the checkpoint."""
    done = resume["batch"]
    set_loader_rng_state(dl, resume["loader_rng"])
    try: n = len(dl)
    except TypeError: n = None
    if n is not None and done > n: raise _too_short(done, n)
    if done == n:  # the train phase was over: nothing to replay
        set_rng_state(resume["rng"])
        return enumerate(())
    it = iter(dl)
    # The skipped batches are loaded but not trained on: that keeps the order and the workers' random streams as
    # they were in the interrupted run (skipping sampler indices instead would not, with num_workers > 0).
    fetch_rng = resume.get("fetch_rng") if loads_ahead(dl) else None
    for i in range(done):
        # A loader that loads ahead has loaded batch `done` while handing out batch `done - 1`, in the interrupted
        # run between two training steps: that load draws from the RNG state it had then.
        if i == done - 1 and fetch_rng is not None: set_rng_state(fetch_rng)
        if next(it, _END) is _END: raise _too_short(done, i)
    set_rng_state(resume["rng"])
    return enumerate(it, done)
