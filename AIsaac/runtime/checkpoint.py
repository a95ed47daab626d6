"""Checkpoint files: what goes in one, writing it atomically, reading it without running code, restoring a trainer.

A checkpoint is a dict of tensors and plain values (so `torch.load(weights_only=True)` reads it):
  format, position {epoch, batch, loader_rng, n_epochs}, model, opts {name: optimizer state_dict},
  callbacks {name: state_dict}, rng.
`position` means: `batch` batches of epoch `epoch`'s train phase are done (0: the epoch has not started);
`loader_rng` is the state that replays that epoch's shuffle (None when `batch` is 0).
"""
from __future__ import annotations

import contextlib
import os
import pickle
import re
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Iterable

import torch

from ..exceptions import CheckpointError
from .rng import get_rng_state, set_loader_rng_state, set_rng_state

FORMAT = "AIsaac checkpoint 1"
_NAME = re.compile(r"checkpoint-e(\d+)-b(\d+)\.pt")


def checkpoint_name(epoch: int, batch: int) -> str:
    """The file name for a checkpoint at `batch` batches into epoch `epoch`."""
    return f"checkpoint-e{epoch}-b{batch}.pt"


def checkpoint_files(folder: str | os.PathLike) -> list[Path]:
    """The checkpoints in `folder`, oldest first (by time written, then position)."""
    found = [(p.stat().st_mtime_ns, int(m[1]), int(m[2]), p) for p in Path(folder).glob("checkpoint-e*-b*.pt")
             if (m := _NAME.fullmatch(p.name))]
    return [p for *_, p in sorted(found)]


def latest_checkpoint(folder: str | os.PathLike) -> Path:
    """The newest checkpoint in `folder`."""
    files = checkpoint_files(folder)
    if not files:
        raise FileNotFoundError(f"No checkpoint in {folder}: CheckpointCB writes files named checkpoint-e<epoch>-"
                                f"b<batch>.pt there; pass one of them or the folder that holds them.")
    return files[-1]


def stateful_callbacks(trainer: Any) -> dict[str, Any]:
    """The trainer's callbacks that have `state_dict` and `load_state_dict`, by the name the trainer knows them by."""
    return {name: cb for name, cb in trainer.named_callbacks.items()
            if callable(getattr(cb, "state_dict", None)) and callable(getattr(cb, "load_state_dict", None))}


def trainer_state(trainer: Any, epoch: int, batch: int, loader_rng: dict | None) -> dict[str, Any]:
    """Everything needed to continue `trainer`'s fit `batch` batches into epoch `epoch` (see the module docstring)."""
    return {"format": FORMAT,
            "position": {"epoch": epoch, "batch": batch, "loader_rng": loader_rng if batch else None,
                         "n_epochs": trainer.n_epochs},
            "model": trainer.model.state_dict(),
            "opts": {name: opt.state_dict() for name, opt in trainer.opts.items()},
            "callbacks": {name: cb.state_dict() for name, cb in stateful_callbacks(trainer).items()},
            "rng": get_rng_state()}


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write `state` to `path` atomically: a crash while writing leaves whatever was at `path` before intact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The temporary file is in the same folder: os.replace is atomic only within one file system.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
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


def read_checkpoint(path: str | os.PathLike, trainer: Any = None) -> dict[str, Any]:
    """Load a checkpoint file (or the newest one in a folder) without running code from it; with `trainer`, check
    that the checkpoint fits its model and callbacks."""
    path = Path(path)
    if path.is_dir(): path = latest_checkpoint(path)
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
    if trainer is not None:
        check_model_state(state["model"], trainer.model, path)
        check_callback_states(state["callbacks"], trainer, path)
    return state


def _listed(keys: list[str], limit: int = 8) -> str:
    return ", ".join(keys[:limit]) + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def check_model_state(saved: dict[str, torch.Tensor], model: torch.nn.Module, source: Any = "the checkpoint") -> None:
    """Raise CheckpointError naming the missing, unexpected and mis-shaped keys when `saved` does not fit `model`."""
    own = model.state_dict()
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


def restore_checkpoint(trainer: Any, state: dict[str, Any]) -> None:
    """Load `state` into the trainer's model, optimizer, callbacks and RNGs, and set where its fit continues."""
    trainer.model.load_state_dict(state["model"])
    # Files from before several optimizers held the one optimizer's state under "opt".
    saved = state["opts"] if "opts" in state else {"opt": state["opt"]} if state.get("opt") else {}
    opts = trainer.opts
    if set(saved) != set(opts):
        raise CheckpointError(f"The checkpoint holds optimizers {sorted(saved)} but this fit has {sorted(opts)}; "
                              f"resume with the opt_func the run was saved with.")
    for name, opt_state in saved.items():
        try: opts[name].load_state_dict(opt_state)
        except (ValueError, KeyError) as e:
            raise CheckpointError(f"The checkpoint's optimizer state does not fit optimizer {name!r} ({e}); resume with "
                                  f"the opt_func (and splitter) the run was saved with.") from e
    callbacks = stateful_callbacks(trainer)
    for name, cb_state in state["callbacks"].items(): callbacks[name].load_state_dict(cb_state)
    set_rng_state(state["rng"])
    pos = state["position"]
    trainer.epoch, trainer.epochs = pos["epoch"], range(pos["epoch"], trainer.n_epochs)
    trainer.resume_at = {**pos, "rng": state["rng"]} if pos["batch"] else None


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
    for i in range(done):
        if next(it, _END) is _END: raise _too_short(done, i)
    set_rng_state(resume["rng"])
    return enumerate(it, done)
