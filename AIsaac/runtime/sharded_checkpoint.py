"""Sharded checkpoints: a model sharded with `fully_shard` (FSDP2) is saved by every process writing its own part.

A sharded checkpoint is a folder named like a checkpoint file without `.pt` (`checkpoint-e<epoch>-b<batch>-<run>/`):
the model's and optimizers' states as `torch.distributed.checkpoint` (DCP) writes them, each process its own shards
(`__<rank>_0.distcp`, with DCP's `.metadata`), and `aisaac.pt`: the rest of a checkpoint (see `checkpoint_file`:
format, position, callbacks, every process's RNG states, setup, checksum) with the parameters' names and shapes in
place of the weights. No process gathers the whole model or optimizer: each takes its own shards
(`get_state_dict`'s sharded state), so a model larger than one process's memory can be saved.

The write is in the background (`dcp.async_save`): the loop waits only while each process copies its shards to host
memory; at most one write is in flight (the next save waits for it), the end of the fit waits for it, and a failed
write is raised at the next save or at the end of the fit. It is atomic: the parts are written into a hidden temporary
folder, and the main process renames it to its name after DCP has collected every process's result and `aisaac.pt`
is on disk, so a folder with a checkpoint's name is always complete.

Resume (`fit(resume_from=...)`) reads it on any number of processes, DCP resharding the state on load, down to one
process with the plain, unsharded model. `consolidate` (also `aisaac consolidate CKPT OUT`) writes the model's state
as one plain state dict, for inference or export.
"""
from __future__ import annotations

import contextlib
import io
import os
import shutil
import threading
import uuid
import warnings
from pathlib import Path
from typing import Any

import torch

from ..exceptions import CheckpointError
from .checkpoint_file import checkpoint_files, checkpoint_name, checksum, load_checkpoint_file, save_checkpoint

META = "aisaac.pt"  # AIsaac's part of a sharded checkpoint folder; written last, before the folder gets its name


def checkpoint_dir_name(epoch: int, batch: int, run_id: str | None = None) -> str:
    """The folder name of a sharded checkpoint: the file name's, without `.pt`."""
    return checkpoint_name(epoch, batch, run_id)[:-len(".pt")]


def is_sharded_checkpoint(path: str | os.PathLike) -> bool:
    """Whether `path` is a complete sharded checkpoint folder."""
    return (Path(path) / META).is_file() and (Path(path) / ".metadata").is_file()


def _opt(opt: Any) -> Any: return getattr(opt, "optimizer", opt)  # Accelerate's AcceleratedOptimizer wraps one


def sharded_state(model: torch.nn.Module, opts: dict[str, Any]) -> dict[str, Any]:
    """{model, opts: {name: state}}: this process's shards of the model's and optimizers' states (DTensors, the
    optimizers' keyed by parameter name); for a plain model, its whole state. Never a full gather."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict, get_optimizer_state_dict
    return {"model": get_model_state_dict(model),
            "opts": {name: get_optimizer_state_dict(model, _opt(opt)) for name, opt in opts.items()}}


def _shapes(model_state: dict[str, Any]) -> dict[str, Any]:
    """The global shape and dtype of each tensor of a (sharded) model state: what `aisaac.pt` holds of the weights."""
    return {k: [list(v.shape), str(v.dtype).removeprefix("torch.")] for k, v in model_state.items()
            if isinstance(v, torch.Tensor)}


def _non_finite_local(model_state: dict[str, Any]) -> list[str]:
    """The names of the tensors whose local part (this process's shard) holds NaN or infinity."""
    bad = []
    for k, v in model_state.items():
        local = v.to_local() if hasattr(v, "to_local") else v
        if isinstance(local, torch.Tensor) and local.is_floating_point() and not bool(torch.isfinite(local).all()):
            bad.append(k)
    return bad


def load_meta(folder: Path) -> dict[str, Any]:
    """A sharded checkpoint's `aisaac.pt`, verified, as a checkpoint dict: `model` holds meta-device tensors of the
    saved shapes (for the checks against a model), `sharded` the folder the states load from."""
    state = load_checkpoint_file(folder / META)
    if not (folder / ".metadata").is_file():
        raise CheckpointError(f"{folder} is not a complete sharded checkpoint: DCP's .metadata is missing.")
    state["model"] = {k: torch.empty(shape, dtype=getattr(torch, dtype), device="meta")
                      for k, (shape, dtype) in state["shapes"].items()}
    state["sharded"] = str(folder)
    return state


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint, file or sharded folder, verified (see `checkpoint_file.load_checkpoint_file`, `load_meta`)."""
    return load_meta(path) if path.is_dir() else load_checkpoint_file(path)


def load_sharded_states(trainer: Any, state: dict[str, Any], keep: Any = ()) -> None:
    """Load a sharded checkpoint's model and optimizer states into the trainer's model (sharded in any way, or plain)
    and optimizers; DCP reads each process's shards from whichever parts hold them. A collective with several
    processes. `keep`: the hyperparameters each optimizer keeps (see `model_state.load_opt_state`)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import (StateDictOptions, set_model_state_dict,
                                                         set_optimizer_state_dict)
    from .model_state import unwrap_model
    model, opts = unwrap_model(trainer.model), trainer.opts
    names = () if isinstance(keep, bool) else keep
    kept = {n: [{k: v for k, v in g.items() if k != "params" and (keep is True or k in names)}
                for g in _opt(o).param_groups] for n, o in opts.items()}
    target = sharded_state(model, opts)  # this process's shards, into which DCP reads (initializes the optimizers)
    dcp.load(target, checkpoint_id=state["sharded"])
    set_model_state_dict(model, target["model"])
    for name, opt in opts.items():
        set_optimizer_state_dict(model, _opt(opt), target["opts"][name], options=StateDictOptions(strict=True))
        for group, mine in zip(_opt(opt).param_groups, kept[name]): group.update(mine)


class ShardedWriter:
    """Writes a sharded model's checkpoints in the background, one at a time (CheckpointCB holds one)."""

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._group: Any = None  # a process group of its own: the background write's collectives never meet the fit's

    def wait(self) -> None:
        """Wait for the write in flight; raise its failure, if it failed (once)."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if (error := self._error) is not None:
            self._error = None
            raise error

    def save(self, trainer: Any, folder: Path, at: tuple[int, int], loader_rng: dict | None,
             processes: list[dict[str, Any]], fetch_rng: dict | None, ready: bool, keep: int | None) -> Path | None:
        """Start writing the checkpoint at `at` (epoch, batch) into `folder` (a collective: every process calls it).
        Written when every process is `ready` and no shard holds NaN or infinity; returns the folder it will have, or
        None when not written."""
        import torch.distributed as dist
        import torch.distributed.checkpoint as dcp
        from .model_state import trainer_state, unwrap_model
        self.wait()  # at most one write in flight; the last one's failure is raised here
        model = unwrap_model(trainer.model)
        # DCP steps an optimizer without state (SGD without momentum) once, at lr 0, to see its state's layout: that
        # is no step of the fit, which counts steps by the optimizer's step hook.
        step = trainer.step
        state = sharded_state(model, trainer.opts)
        trainer.step = step
        epoch, batch = at
        # Every process writes into the folder the main process names (each process drew its own run id, but the
        # main process's is the run's).
        votes = trainer.gather_object({"ready": ready, "bad": _non_finite_local(state["model"]),
                                       "name": checkpoint_dir_name(epoch, batch, trainer.run_id),
                                       "token": uuid.uuid4().hex[:8]})
        if votes is None or not all(v["ready"] for v in votes): return None
        if bad := sorted({k for v in votes for k in v["bad"]}):
            if trainer.is_main_process:
                warnings.warn(f"CheckpointCB: not saving epoch {epoch}, batch {batch}: the weights hold NaN or "
                              f"infinity ({', '.join(bad[:3])}); the last checkpoint written stays the newest.",
                              RuntimeWarning)
            return None
        meta = trainer_state(trainer, epoch, batch, loader_rng, processes, fetch_rng, weights=False)
        meta["shapes"], meta["opt_names"] = _shapes(state["model"]), sorted(trainer.opts)
        meta["checksum"] = checksum(meta)
        # Serialized now: the callbacks' states in it are theirs, which the fit goes on changing during the write.
        buffer = io.BytesIO()
        torch.save(meta, buffer)
        blob = buffer.getvalue()
        name = votes[0]["name"]
        final, tmp = folder / name, folder / f".{name}.{votes[0]['token']}.tmp"
        if self._group is None and dist.is_initialized(): self._group = dist.new_group(backend="gloo")
        saving = dcp.async_save(state, checkpoint_id=tmp, process_group=self._group)  # returns once staged
        future: Any = getattr(saving, "upload_completion", saving)  # (an AsyncSaveResponse: with a stager of its own)
        main, run_id = trainer.is_main_process, trainer.run_id

        group = self._group

        def finish() -> None:
            error: BaseException | None = None
            try:
                future.result()  # DCP's last step collects every process's result: all parts are written
                if main: _publish(blob, tmp, final, run_id, keep)
            except BaseException as e:
                error = e
                if main: shutil.rmtree(tmp, ignore_errors=True)
            if group is not None:  # every process learns the outcome once the folder has its name (or failed)
                told = [repr(error) if error is not None else None]
                try: dist.broadcast_object_list(told, group_src=0, group=group)
                except BaseException as e: told = [repr(e)]
                if error is None and told[0] is not None:
                    error = CheckpointError(f"The sharded checkpoint {final} was not written: on the main process, "
                                            f"{told[0]}")
            self._error = error

        self._thread = threading.Thread(target=finish, name=f"AIsaac sharded checkpoint {name}", daemon=True)
        self._thread.start()
        return final


def _publish(meta: bytes, tmp: Path, final: Path, run_id: str | None, keep: int | None) -> None:
    """Complete a written checkpoint: `aisaac.pt` (`meta`, serialized) in, the folder renamed to its name, then older
    ones pruned."""
    save_checkpoint({}, tmp / META, write=lambda _, f: f.write(meta))
    if final.exists(): shutil.rmtree(final)  # the same position saved again (a resumed run): the new one replaces it
    os.replace(tmp, final)
    if os.name == "posix":  # the rename survives a power cut
        fd = os.open(final.parent, os.O_RDONLY)
        try: os.fsync(fd)
        finally: os.close(fd)
    for stale in final.parent.glob(f".checkpoint-e*-b*-{run_id}.*.tmp"):  # this run's, left by a killed write
        if stale.is_dir(): shutil.rmtree(stale, ignore_errors=True)
    if keep is not None:
        for old in checkpoint_files(final.parent, run_id)[:-keep]:
            if old == final: continue
            with contextlib.suppress(FileNotFoundError):
                shutil.rmtree(old) if old.is_dir() else old.unlink()


def refuse_sharded(model: torch.nn.Module, what: str) -> None:
    """Raise, saying what to do instead, when `what` (`trainer.save`, `trainer.export`) is asked of a sharded model."""
    from .distributed import is_sharded
    if is_sharded(model):
        raise CheckpointError(f"{what} of a model sharded with fully_shard: each process holds only its shards of the "
                              f"weights. Write sharded checkpoints with CheckpointCB, then make one plain state dict "
                              f"with `aisaac consolidate CKPT OUT` (or AIsaac.all.consolidate), load it into the "
                              f"unsharded model (model.load_state_dict(torch.load(OUT, weights_only=True))) and "
                              f"{what.split('.')[-1]} that in one process.")


def consolidate(checkpoint: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Write the model's state of a checkpoint (a sharded checkpoint folder, a CheckpointCB folder: its newest) to
    `out` as one plain state dict (`model.load_state_dict(torch.load(out, weights_only=True))` loads it into the
    unsharded model), for inference and export. Runs in one process, which then holds the whole model."""
    from torch.distributed.checkpoint import FileSystemReader
    from torch.distributed.checkpoint.default_planner import _EmptyStateDictLoadPlanner
    from torch.distributed.checkpoint.state_dict_loader import _load_state_dict
    path = Path(checkpoint)
    if not path.exists(): raise FileNotFoundError(f"No checkpoint at {path}.")
    if path.is_dir() and not is_sharded_checkpoint(path):
        found = checkpoint_files(path)
        if not found:
            raise FileNotFoundError(f"No checkpoint in {path}: pass a checkpoint folder or file, or the folder "
                                    f"CheckpointCB wrote them into.")
        path = found[-1]
    if path.is_dir():
        load_meta(path)  # verifies AIsaac's part
        sd: dict[str, Any] = {}
        _load_state_dict(sd, storage_reader=FileSystemReader(path), planner=_EmptyStateDictLoadPlanner(keys=["model"]),
                         no_dist=True)
        model = sd["model"]
    else: model = load_checkpoint_file(path)["model"]
    return save_checkpoint(model, out)
