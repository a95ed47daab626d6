"""The checkpoint file: its contents, its name, a checksum over it, writing it atomically and reading it safely.

A checkpoint is a dict of tensors and plain values (so `torch.load(weights_only=True)` reads it):
  format, position {epoch, batch, loader_rng, fetch_rng, n_epochs}, model, opts {name: optimizer state_dict},
  callbacks {name: state_dict}, rng, processes, setup (what the fit was started with, see `resume.fit_setup`; compared
  when resuming), and checksum (a SHA-256 of all the rest, checked on load: a flipped bit anywhere in it is an error).
`position` means: `batch` batches of epoch `epoch`'s train phase are done (0: the epoch has not started);
`loader_rng` is the state that draws that epoch's shuffle again (None when `batch` is 0); for a stream with a state
it holds that state at the position (`stream`: {batch: state}, see `resume.train_batches`); in an epoch resumed on
another number of processes it also says how its batches were dealt (`dealt`, see `elastic`).
`model` is the user's module's state (no DDP `module.` prefix; a sharded model's full state), so it loads into the
bare model in one process. `processes` is None for a one-process fit; from a fit of N processes it lists each
process's {rng, loader_rng} by process index (`rng` and `position` hold the main process's, process 0), and
`position.batch` counts each process's batches. For a loader that loads a batch ahead (Accelerate's), `fetch_rng`
(in `position`, and per process) is the RNG state its next batch was loaded with (None when not needed).
`model_state.trainer_state` builds one; `resume` reads it back into a trainer. A sharded model's checkpoint is a folder
of the same name without `.pt` (see `sharded_checkpoint`); `checkpoint_files` lists those too, once complete.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import pickle
import re
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import IO, Any, Callable

import torch

from ..exceptions import CheckpointError
from .messages import inform

FORMAT = "AIsaac checkpoint 1"
SAVE_FORMAT = "AIsaac model 1"  # the files trainer.save and SaveBestCB write (weights, optimizer state)
_NAME = re.compile(r"checkpoint-e(\d+)-b(\d+)(?:-([0-9a-f]+))?\.pt")
_DIR_NAME = re.compile(r"checkpoint-e(\d+)-b(\d+)(?:-([0-9a-f]+))?")  # a sharded checkpoint (`sharded_checkpoint`)


def newer_format(found: Any, current: str) -> bool:
    """Whether `found` names a later version of the format `current` ("AIsaac checkpoint 2" for "... 1")."""
    kind, _, version = current.rpartition(" ")
    if not isinstance(found, str) or not found.startswith(kind + " "): return False
    later = found[len(kind) + 1:]
    return later.isdigit() and int(later) > int(version)


def checkpoint_name(epoch: int, batch: int, run_id: str | None = None) -> str:
    """The file name for a checkpoint at `batch` batches into epoch `epoch` of the run `run_id`."""
    return f"checkpoint-e{epoch}-b{batch}" + (f"-{run_id}" if run_id else "") + ".pt"


def checkpoint_files(folder: str | os.PathLike, run_id: str | None = None) -> list[Path]:
    """The checkpoints in `folder` (only run `run_id`'s, if given), oldest first (by time written, then position):
    files, and complete sharded checkpoint folders (timed by their `aisaac.pt`, written last)."""
    found = []
    for p in Path(folder).glob("checkpoint-e*-b*"):
        m = _NAME.fullmatch(p.name) or _DIR_NAME.fullmatch(p.name)
        if m is None or (run_id is not None and m[3] != run_id): continue
        timed = p / "aisaac.pt" if p.is_dir() else p
        with contextlib.suppress(FileNotFoundError):  # (a folder without it is not a checkpoint)
            if timed.is_file(): found.append((timed.stat().st_mtime_ns, int(m[1]), int(m[2]), p))
    return [p for *_, p in sorted(found)]


def latest_checkpoint(folder: str | os.PathLike) -> Path:
    """The newest checkpoint in `folder`; when it holds several runs' checkpoints, the newest of the run written to
    last, and a message says which run that is."""
    files = checkpoint_files(folder)
    if not files:
        raise FileNotFoundError(f"No checkpoint in {folder}: CheckpointCB writes files named checkpoint-e<epoch>-"
                                f"b<batch>[-<run>].pt there; pass one of them or the folder that holds them.")
    say_run_chosen(folder, files[-1])
    return files[-1]


def run_of(path: Path) -> str | None:
    """The run id in a checkpoint's file name (None for a name without one)."""
    m = _NAME.fullmatch(path.name) or _DIR_NAME.fullmatch(path.name)
    return m[3] if m else None


def say_run_chosen(folder: str | os.PathLike, chosen: Path) -> None:
    """When `folder` holds checkpoints of several runs, say which run `chosen` belongs to and how to pick another."""
    runs = sorted({run_of(p) or "(none)" for p in checkpoint_files(folder)})
    if len(runs) > 1:
        inform(None, f"{folder} holds checkpoints of {len(runs)} runs ({', '.join(runs)}); resuming run "
                     f"{run_of(chosen) or '(none)'} from its newest, {chosen.name}. To resume another run, pass its "
                     f"checkpoint file as resume_from.")


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
    return [k for k, v in state["model"].items()  # (a sharded checkpoint's are meta tensors, checked as written)
            if isinstance(v, torch.Tensor) and v.is_floating_point() and not v.is_meta
            and not bool(torch.isfinite(v).all())]


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike,
                    write: Callable[[dict[str, Any], IO[bytes]], Any] | None = None) -> Path:
    """Write `state` to `path` atomically: a crash while writing leaves whatever was at `path` before intact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The temporary file is in the same folder: os.replace is atomic only within one file system.
    # Its name carries the file's (so the run's) name and the writing process: another run's cleanup never takes it.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            (write or torch.save)(state, f)
            f.flush()
            os.fsync(f.fileno())  # the bytes are on disk before the name points at them
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError): os.unlink(tmp)
        full = no_room_error(e, path)
        if full is not None: raise full from e
        raise
    if os.name == "posix":  # make the rename itself survive a power cut
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try: os.fsync(dir_fd)
        finally: os.close(dir_fd)
    return path


_NO_ROOM = {errno.ENOSPC: "no space left on", errno.EDQUOT: "the disk quota is used up on",
            errno.EFBIG: "the file size limit is reached on"}


def no_room_error(e: BaseException, path: Path) -> OSError | None:
    """The error to raise for a save that ran out of room, or None for any other failure. torch reports a write that
    failed for want of room as `[enforce fail at inline_container.cc] unexpected pos`, the OSError behind it as
    its context."""
    cause = e if isinstance(e, OSError) else e.__context__
    if not isinstance(cause, OSError) or cause.errno not in _NO_ROOM: return None
    try: free = f", {shutil.disk_usage(path.parent).free / 2**20:.1f} MiB free"
    except OSError: free = ""
    return OSError(cause.errno, f"Could not write {path}: {_NO_ROOM[cause.errno]} the device holding {path.parent}"
                                f"{free}. The files already there are intact. Free some space, keep fewer checkpoints "
                                f"(CheckpointCB(..., keep=1)) or write them elsewhere.", str(path))


_TEMP = re.compile(r"\.(checkpoint-e\d+-b\d+(?:-[0-9a-f]+)?\.pt)\.(?:(\d+)-)?[^.]*\.tmp")


def _alive(pid: int) -> bool:
    try: os.kill(pid, 0)
    except ProcessLookupError: return False
    except PermissionError: return True  # another user's process
    return True


def remove_stale_temp_files(folder: str | os.PathLike, run_id: str | None = None) -> list[Path]:
    """Delete the temporary files a save of run `run_id` (None: of checkpoints named without a run) left when it was
    killed midway: those whose writing process is gone. Other runs' files, and saves in progress, are left alone, so
    runs can share a folder. Returns the files deleted."""
    removed = []
    for p in Path(folder).glob(".checkpoint-e*-b*.pt.*.tmp"):
        m = _TEMP.fullmatch(p.name)
        if m is None or (_NAME.fullmatch(m[1]) or [None] * 4)[3] != run_id: continue
        if m[2] is not None and int(m[2]) != os.getpid() and _alive(int(m[2])): continue  # a save in progress
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
            removed.append(p)
    return removed


def check_writable(folder: str | os.PathLike, who: str) -> None:
    """Raise now, naming `folder` and what to do, when checkpoints cannot be written there (the folder is made if
    missing): better at the fit's start than after its first epoch."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".aisaac-write-check.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise type(e)(e.errno, f"{who} cannot write checkpoints into {folder}: {e.strerror or e}. Give it a folder "
                               f"this process can create and write to.", str(folder)) from e


def load_checkpoint_file(path: Path) -> dict[str, Any]:
    """One checkpoint file, loaded without running code from it, its format and checksum verified."""
    try: is_zip = zipfile.is_zipfile(path)
    except zipfile.BadZipFile: is_zip = False  # a flipped bit in the archive's end record
    if path.is_file() and not is_zip:  # torch.save writes zip archives; a cut-off one is not one
        raise CheckpointError(f"{path} is not a readable checkpoint (truncated or corrupt?): not a torch.save archive.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(f"{path} holds objects other than tensors and plain values, so it is not loaded "
                              f"(loading would run code from the file). Only load files you trust, and give callbacks "
                              f"state_dicts of tensors, numbers, strings, lists and dicts.") from e
    except Exception as e:  # a changed byte can make the unpickler fail in any way (UnicodeDecodeError, KeyError...)
        raise CheckpointError(f"{path} is not a readable checkpoint (truncated or corrupt?): {type(e).__name__}: "
                              f"{e}. Resume from another checkpoint.") from e
    if isinstance(state, dict) and newer_format(state.get("format"), FORMAT):
        raise CheckpointError(f"{path} was written by a newer version of AIsaac (format '{state['format']}'; this "
                              f"version reads '{FORMAT}'). Upgrade AIsaac to resume from it: pip install -U aisaac.")
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an AIsaac checkpoint (written by CheckpointCB); to load bare weights "
                              f"use model.load_state_dict(torch.load(path, weights_only=True)).")
    if "checksum" in state and checksum(state) != state["checksum"]:
        raise CheckpointError(f"{path} is corrupt: its contents do not match the checksum stored in it (a changed "
                              f"byte on disk or in transfer). Resume from another checkpoint.")
    return state
