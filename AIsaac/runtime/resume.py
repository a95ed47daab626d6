"""Resuming a fit from a checkpoint: what the fit was set up with and the checks against the saved run, reading the
file for a trainer, putting its states back, and replaying the interrupted epoch's batches.

A checkpoint of N processes (see `checkpoint_file`) resumes on N processes with each taking its own RNG states back,
so the run continues exactly as it would have. On another number M, each process takes process (index mod N)'s RNG
states; at an epoch boundary (batch 0) training continues at the next epoch, and mid-epoch the interrupted epoch's
remaining samples are dealt out to the M processes, each trained on once (see `elastic`). Refused mid-epoch on
another number: a loader whose order cannot be recomputed or dealt out again (`elastic.unsupported` says which).
"""
from __future__ import annotations

import itertools
import os
import uuid
import warnings
from pathlib import Path
from typing import Any, Iterable, Iterator

import torch
from torch.utils.data import DataLoader, IterableDataset

from ..exceptions import CheckpointError
from .batch import loader_length
from .checkpoint_file import checkpoint_files, latest_checkpoint, non_finite, say_run_chosen
from .elastic import DEALT, elastic_batches, is_elastic, loader_over, unsupported
from .loader_seeding import SeededDataLoader, seeded_batches, seeded_loader
from .messages import inform
from .model_state import load_model_state, load_opt_state, stateful_callbacks, unwrap_model
from .rng import STREAM, loader_rng_state, loads_ahead, set_loader_rng_state, set_rng_state
from .sharded_checkpoint import is_sharded_checkpoint, load_checkpoint, load_sharded_states

CHANGES = ("n_epochs", "batch_size", "lr", "opt", "callbacks", "frozen")


def _plain(v: Any) -> Any:
    """A hyperparameter as plain values that survive a save and a `weights_only` load unchanged (tuples as lists)."""
    if isinstance(v, torch.Tensor): return v.tolist()
    if isinstance(v, (tuple, list)): return [_plain(x) for x in v]
    if isinstance(v, dict): return {k: _plain(x) for k, x in v.items()}
    return v


def _allowed(allow: Any) -> set[str]:
    return {allow} if isinstance(allow, str) else set(allow)


def fit_setup(trainer: Any, n_epochs: int | None, opt: Any, fit_only: Iterable[Any] = (),
              max_steps: int | None = None) -> dict[str, Any]:
    """What a fit is started with, compared when resuming: n_epochs (None: unbounded) and max_steps, the train
    loader's batch size and length, the optimizer's class and its param groups' hyperparameters (as built, before any
    schedule), the parameters that do not train (frozen), and the names of the trainer's callbacks (those added for this fit only, `fit_only`, are left out: a checkpoint or a stop
    added to one fit need not be there when it resumes; callbacks with state are compared anyway, see
    check_callback_states)."""
    skip = {id(cb) for cb in fit_only}
    train: Any = getattr(trainer.dls, "train", None)
    return {"n_epochs": n_epochs, "batch_size": getattr(train, "batch_size", None), "train_batches": loader_length(train),
            "opt": f"{type(opt).__module__}.{type(opt).__qualname__}",
            "hparams": [{k: _plain(v) for k, v in g.items() if k != "params"} for g in getattr(opt, "param_groups", ())],
            "callbacks": sorted(n for n, cb in trainer.named_callbacks.items() if id(cb) not in skip),
            "max_steps": max_steps,
            "frozen": _frozen(unwrap_model(trainer.model))}


def _frozen(model: Any) -> list[str]:
    """The names of the parameters that do not train; none for a model that names no parameters (not an nn.Module)."""
    named = getattr(model, "named_parameters", None)
    return [n for n, p in named() if not p.requires_grad] if callable(named) else []


def check_setup(saved: dict[str, Any], setup: dict[str, Any], allow: Any = (), source: Any = "the checkpoint") -> None:
    """Raise CheckpointError listing how `setup` differs from the `saved` one, except the kinds named in `allow`."""
    allow = _allowed(allow)
    if unknown := allow - set(CHANGES):
        raise ValueError(f"allow_changes names {sorted(unknown)}; it takes any of {', '.join(CHANGES)}.")
    diffs = []

    def differ(kind: str, what: str, old: Any, new: Any) -> None:
        if old != new and kind not in allow: diffs.append((kind, f"{what}: saved {old!r}, now {new!r}"))

    differ("n_epochs", "n_epochs", saved["n_epochs"], setup["n_epochs"])
    if "max_steps" in saved: differ("n_epochs", "max_steps", saved["max_steps"], setup["max_steps"])
    if "frozen" in saved and saved["frozen"] != setup["frozen"]:  # (files from before it was saved: not compared)
        was, now = set(saved["frozen"]), set(setup["frozen"])
        if "frozen" not in allow:
            diffs.append(("frozen", f"frozen parameters (requires_grad=False): saved {len(was)}, now {len(now)}" +
                          (f"; frozen then, training now: {_listed(sorted(was - now), 4)}" if was - now else "") +
                          (f"; frozen now, trained then: {_listed(sorted(now - was), 4)}" if now - was else "")))
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


def check_schedules(saved: dict[str, Any], setup: dict[str, Any], trainer: Any, source: Any = "the checkpoint") -> None:
    """Raise CheckpointError when the fit's length changed (an allowed change of n_epochs or max_steps) under a
    schedule sized by it (a callback with `sized_by_fit`, e.g. OneCycleSchedulerCB): its saved state is a schedule
    of the old length, which would run out (or stop short) in the resumed fit."""
    changed = [f"{k}: saved {saved[k]!r}, now {setup[k]!r}" for k in ("n_epochs", "max_steps", "train_batches")
               if k in saved and saved[k] != setup[k]]
    sized = [n for n, cb in trainer.named_callbacks.items() if getattr(cb, "sized_by_fit", False)]
    if changed and sized:
        raise CheckpointError(f"The fit's length changed ({'; '.join(changed)}), but {_listed(sized)} spread "
                              f"{'its' if len(sized) == 1 else 'their'} schedule over the saved length, so the resumed "
                              f"fit would run past its end. Resume with the saved length, or start a new fit (without "
                              f"resume_from) for the new one. Nothing was changed.")


def _keys(state: Any) -> str: return ", ".join(map(repr, sorted(state, key=repr))) if isinstance(state, dict) else "-"


def check_callback_states(saved: dict[str, Any], trainer: Any, source: Any = "the checkpoint") -> None:
    """Raise CheckpointError when the checkpoint and the trainer disagree on which callbacks have state, or on the
    keys of one's state."""
    own = stateful_callbacks(trainer)
    lacking, new = [n for n in saved if n not in own], [n for n in own if n not in saved]
    if lacking:
        raise CheckpointError(f"{source} holds state for callbacks this trainer lacks: {_listed(lacking)}; add them "
                              f"(the same kinds, e.g. the scheduler) before resuming, or the run would not continue "
                              f"as it was.")
    if new:
        raise CheckpointError(f"This trainer has callbacks with state that {source} does not hold: {_listed(new)}; "
                              f"resume with the callbacks the run was saved with, then add new ones in a later fit.")
    for name, cb in own.items():
        try: now = cb.state_dict()
        except Exception: continue  # a state that exists only during a fit: checked as it loads (restore_checkpoint)
        # (An empty state is one the fit builds, as a scheduler's: checked as it loads.)
        if isinstance(saved[name], dict) and isinstance(now, dict) and now and set(saved[name]) != set(now):
            raise CheckpointError(f"{source} holds {name}'s state with keys {_keys(saved[name])}, but this {name} "
                                  f"keeps {_keys(now)}: its state_dict changed since the run was saved. Resume with "
                                  f"the callback's version that saved it (or have load_state_dict read the old "
                                  f"keys). Nothing was changed.")


def read_checkpoint(path: str | os.PathLike, trainer: Any = None, setup: dict[str, Any] | None = None,
                    allow_changes: Any = ()) -> dict[str, Any]:
    """Load a checkpoint file (or the newest one in a folder whose weights are all finite) without running code from
    it and verify its checksum; with `trainer`, check that it fits its model and callbacks, and with `setup` (see
    `fit_setup`) that the fit is set up as the saved one was, except for the kinds in `allow_changes`."""
    path = Path(path)
    if path.is_dir() and not is_sharded_checkpoint(path):  # a folder of checkpoints (a sharded one is one checkpoint)
        for file in reversed(checkpoint_files(path)):  # a folder may hold several runs': say_run_chosen says which
            state = load_checkpoint(file)
            if not (bad := non_finite(state)):
                say_run_chosen(path, file)
                break
            warnings.warn(f"Skipped {file}: its weights hold NaN or infinity ({_listed(bad, 3)}); resuming from the "
                          f"newest finite checkpoint before it.", RuntimeWarning, stacklevel=3)
        else:
            latest_checkpoint(path)  # raises FileNotFoundError when there is no checkpoint at all
            raise CheckpointError(f"Every checkpoint in {path} holds NaN or infinity in its weights; none can resume.")
    else: state = load_checkpoint(path)
    if trainer is not None:
        check_model_state(state["model"], trainer.model, path)
        if setup is not None and "setup" in state:
            check_setup(state["setup"], setup, allow_changes, path)
            check_schedules(state["setup"], setup, trainer, path)
            if "callbacks" not in _allowed(allow_changes): check_callback_states(state["callbacks"], trainer, path)
        else: check_callback_states(state["callbacks"], trainer, path)
    state["allow_changes"] = allow_changes
    return state


def prepare_resume(trainer: Any, resume_from: str | os.PathLike | None, setup: dict[str, Any],
                   allow_changes: Any = ()) -> tuple[dict[str, Any] | None, str]:
    """(the checkpoint at `resume_from`, read and checked against `trainer` and `setup` (see `read_checkpoint`), or
    None without one; the fit's run id: the checkpoint's run's, else a new one). Changes nothing on the trainer."""
    checkpoint = read_checkpoint(resume_from, trainer, setup, allow_changes) if resume_from is not None else None
    run_id = (checkpoint or {}).get("setup", {}).get("run_id")
    return checkpoint, run_id or uuid.uuid4().hex[:8]


def _process_rng(trainer: Any, state: dict[str, Any]) -> tuple[dict, dict | None, dict | None, dict | None]:
    """This process's (rng, loader_rng, fetch_rng, elastic) from `state`; elastic: {processes, index} for a mid-epoch
    resume on another number of processes (or of an epoch already dealt out again), else None; see the module
    docstring."""
    pos, processes = state["position"], state.get("processes")
    saved, now = len(processes) if processes else 1, trainer.num_processes
    if not (pos["batch"] and is_elastic(pos["loader_rng"], saved, now)):
        if saved == now and processes:
            mine = processes[trainer.process_index]
            return mine["rng"], mine["loader_rng"], mine.get("fetch_rng"), None
        if saved == now or not processes: return state["rng"], pos["loader_rng"], pos.get("fetch_rng"), None
        return processes[trainer.process_index % saved]["rng"], None, None, None  # an epoch boundary
    if why := unsupported(getattr(trainer.dls, "train", None), now):
        raise CheckpointError(f"The checkpoint was saved {pos['batch']} batches into epoch {pos['epoch']} by a fit of "
                              f"{saved} process(es), whose batches were dealt out among them; it resumes mid-epoch "
                              f"only on {saved} process(es) (this fit has {now}) when {why}. Resume on {saved}, or "
                              f"from a checkpoint at an epoch boundary (checkpoint-e<epoch>-b0.pt), which any number "
                              f"can.")
    rng = processes[trainer.process_index % saved]["rng"] if processes else state["rng"]
    # The epoch's dealing so far, for `elastic_batches` and for the checkpoints written in the rest of this epoch.
    loader_rng = {**pos["loader_rng"], DEALT: [*pos["loader_rng"].get(DEALT, []), [saved, pos["batch"]]]}
    return rng, loader_rng, None, {"processes": now, "index": trainer.process_index}


def restore_checkpoint(trainer: Any, state: dict[str, Any]) -> None:
    """Load `state` into the trainer's model, optimizer, callbacks and RNGs, and set where its fit continues."""
    rng, loader_rng, fetch_rng, elastic = _process_rng(trainer, state)  # first: a refused resume changes nothing
    # The optimizers next: torch checks their groups before changing anything, so a refusal leaves the model as it was.
    # Files from before several optimizers held the one optimizer's state under "opt".
    saved = state["opts"] if "opts" in state else {"opt": state["opt"]} if state.get("opt") is not None else {}
    if "sharded" in state: saved = dict.fromkeys(state["opt_names"])  # the states are in the DCP parts
    opts = trainer.opts
    if set(saved) != set(opts):
        raise CheckpointError(f"The checkpoint holds optimizers {sorted(saved)} but this fit has {sorted(opts)}; "
                              f"resume with the opt_func the run was saved with.")
    # An allowed change of hyperparameters is a change: the new values replace the saved ones.
    allowed = _allowed(state.get("allow_changes", ()))
    keep = True if "opt" in allowed else {"lr"} & allowed
    if "sharded" in state: load_sharded_states(trainer, state, keep)  # any sharding, or none: DCP reshards
    else:
        for name, saved_opt in saved.items():
            load_opt_state(opts[name], saved_opt, trainer.model, keep,
                           advice=f"resume with the opt_func (and splitter) the run was saved with (optimizer {name!r})")
        load_model_state(trainer.model, state["model"])
    callbacks = stateful_callbacks(trainer)
    for name, cb_state in state["callbacks"].items():
        if name not in callbacks: continue
        try: callbacks[name].load_state_dict(cb_state)
        except (KeyError, TypeError, AttributeError, IndexError) as e:
            raise CheckpointError(f"{name}.load_state_dict could not load the state the checkpoint holds for it (keys "
                                  f"{_keys(cb_state)}): {type(e).__name__}: {e}. Resume with the callback's version "
                                  f"that saved it.") from e
    set_rng_state(rng)
    pos = state["position"]
    n_epochs = trainer.n_epochs  # None: only the step budget bounds the fit
    trainer.epoch = pos["epoch"]
    trainer.epochs = itertools.count(pos["epoch"]) if n_epochs is None else range(min(pos["epoch"], n_epochs), n_epochs)
    trainer.step = pos.get("step", 0)  # optimizer steps so far: the budget and the validation points continue
    trainer.resume_at = {**pos, "loader_rng": loader_rng, "fetch_rng": fetch_rng, "rng": rng,
                         "elastic": elastic} if pos["batch"] else None


_END = object()


def _too_short(done: int, n: int) -> CheckpointError:
    return CheckpointError(f"The checkpoint was saved {done} batches into an epoch, but the train loader now has only "
                           f"{n}; resume with the same data and batch size.")


def state_source(dl: Any) -> Any:
    """What holds the train stream's position as a state to save (`state_dict`/`load_state_dict`): the loader
    (torchdata's `StatefulDataLoader`), or its `IterableDataset` (a Hugging Face streaming dataset) when it is read
    in this process (no workers: a worker's copy of it would hold the position); None when neither does."""
    if loads_ahead(dl) or type(dl).__name__ == "DataLoaderDispatcher": return None  # Accelerate's: replayed
    if _stateful(dl): return dl
    ds = getattr(dl, "dataset", None)
    return ds if isinstance(ds, IterableDataset) and _stateful(ds) and not getattr(dl, "num_workers", 0) else None


def _stateful(o: Any) -> bool:
    return callable(getattr(o, "state_dict", None)) and callable(getattr(o, "load_state_dict", None))


def skips_at_sampler(dl: Any) -> bool:
    """Whether a resume can start `dl`'s pass at any batch without loading the ones before: a loader with
    `iter_from(batch)` (`TensorLoader`), or a torch DataLoader (plain, `SeededDataLoader`, `DatasetLoader`) over
    map-style data with a batch sampler."""
    if callable(getattr(dl, "iter_from", None)): return True
    return ((type(dl) is DataLoader or isinstance(dl, SeededDataLoader)) and dl.batch_sampler is not None
            and not isinstance(dl.dataset, IterableDataset))


def train_batches(trainer: Any, resume: dict[str, Any] | None) -> tuple[dict[str, Any], Iterator[tuple[int, Any]]]:
    """(the train epoch's `loader_rng`, its `(index, batch)` pairs): `enumerate` over the train loader (with per-batch
    worker seeds, see loader_seeding), or, resuming, the interrupted epoch's remaining pairs (`resume_batches`). For
    a stream with a state, `loader_rng[STREAM]` holds its states at the last positions, for the checkpoints; a
    stream's dataset with `set_epoch` is told the epoch first."""
    dl = trainer.dl
    # A stream's pass knows its epoch, as the Hugging Face Trainer and Accelerate tell it: its saved state then
    # names the epoch it belongs to, and restores only that one (a Hugging Face stream's rule).
    set_epoch = getattr(getattr(dl, "dataset", None), "set_epoch", None)
    if isinstance(getattr(dl, "dataset", None), IterableDataset) and callable(set_epoch): set_epoch(trainer.epoch)
    batches: Iterator[tuple[int, Any]]
    if resume is None: loader_rng, batches = loader_rng_state(dl), enumerate(seeded_loader(dl))
    else: loader_rng, batches = resume["loader_rng"], iter(resume_batches(dl, resume, trainer))
    source = state_source(dl)
    if source is None or resume is not None and resume.get("elastic"): return loader_rng, batches
    loader_rng = {**loader_rng, STREAM: {}}
    return loader_rng, _recording(batches, source, loader_rng[STREAM])


def _recording(batches: Iterator[tuple[int, Any]], source: Any, states: dict[int, Any]) -> Iterator[tuple[int, Any]]:
    """`batches`, keeping `source`'s state after each, by the number of batches done, for the last two positions
    (a fit stopped before a batch has loaded it: its checkpoint is one position back)."""
    for i, batch in batches:
        states[i + 1] = source.state_dict()
        states.pop(i - 1, None)
        yield i, batch


def resume_batches(dl: Any, resume: dict[str, Any], trainer: Any = None) -> Iterable[tuple[int, Any]]:
    """`enumerate(dl)` continued from a checkpoint `resume['batch']` batches into its epoch, the RNGs then as they
    were at the checkpoint, in time independent of the position where it can:

    - a stream with a state (`state_source`): the state saved at the position is loaded back;
    - map-style data (`skips_at_sampler`): the pass's order is drawn as it was (`loader_rng`), and the batches
      before the position are skipped at the batch sampler, loading nothing; the workers seed per batch
      (loader_seeding), so the batches after it draw as in the interrupted run;
    - otherwise (a stream without a state, a loader of Accelerate's) the batches before the position are loaded
      again and dropped, which keeps the order and the workers' random streams (a message says how many);
    - an elastic resume (another number of processes): `elastic.elastic_batches`, which recomputes the order.
    """
    if resume.get("elastic"): return elastic_batches(dl, resume)
    done, loader_rng = resume["batch"], resume["loader_rng"]
    n = loader_length(dl)
    if n is not None and done > n: raise _too_short(done, n)
    set_loader_rng_state(dl, loader_rng)
    if done == n:  # the train phase was over: nothing to load
        set_rng_state(resume["rng"])
        return enumerate(())
    source = state_source(dl)
    state = (loader_rng.get(STREAM) or {}).get(done) if source is not None else None
    if state is not None:
        source.load_state_dict(state)
        it = iter(dl)
    elif skips_at_sampler(dl) and not loads_ahead(dl): it = _skipped(dl, done, n)
    else: return _replayed(dl, resume, trainer)
    set_rng_state(resume["rng"])
    return enumerate(it, done)


class _Rest:
    """A pass's remaining batches, as a batch sampler of one pass."""

    def __init__(self, batches: Iterator[Any], n: int): self.batches, self.n = batches, n

    def __len__(self) -> int: return self.n

    def __iter__(self) -> Iterator[Any]: return self.batches


def _skipped(dl: Any, done: int, n: int | None) -> Iterator[Any]:
    """`dl`'s pass from batch `done` on, its order drawn as a new iterator of `dl` draws it (the RNGs as the pass
    began), the batches before `done` skipped at the batch sampler."""
    if callable(getattr(dl, "iter_from", None)): return dl.iter_from(done)
    dl = seeded_loader(dl)  # the loader the uninterrupted fit iterated
    # A new iterator draws its workers' base seed before its batch sampler's first batch: drawn here too.
    torch.empty((), dtype=torch.int64).random_(generator=dl.generator)
    batches = iter(seeded_batches(dl))
    for i in range(done):
        if next(batches, _END) is _END: raise _too_short(done, i)
    # The first remaining batch now: a sampler draws its order at its first batch, before the RNGs are restored.
    first = next(batches, _END)
    rest = _Rest(iter(()) if first is _END else itertools.chain([first], batches), (n or done + 1) - done)
    return iter(loader_over(dl, rest))  # its iterator's own draws (its workers' base seed) come before the restore


def _replayed(dl: Any, resume: dict[str, Any], trainer: Any) -> Iterator[tuple[int, Any]]:
    """The batches before the position loaded again and dropped: the order and the workers' random streams are then
    as they were in the interrupted run."""
    done = resume["batch"]
    why = (f"the train loader ({type(dl).__name__}) can neither start at a batch (map-style data in a DataLoader, a "
           f"TensorLoader) nor restore a saved state (state_dict/load_state_dict)")
    if _stateful(getattr(dl, "dataset", None)) and getattr(dl, "num_workers", 0) > 0:
        why = ("the train stream's state is held by the loader's worker processes, out of reach (num_workers > 0; "
               "torchdata's StatefulDataLoader gathers it, or num_workers=0 keeps it here)")
    inform(trainer, f"Resuming {done} batches into epoch {resume['epoch']}: {why}, so the {done} batches before the "
                    f"checkpoint are loaded again and dropped (replayed).")
    it = iter(dl)
    fetch_rng = resume.get("fetch_rng") if loads_ahead(dl) else None
    for i in range(done):
        # A loader that loads ahead has loaded batch `done` while handing out batch `done - 1`, in the interrupted
        # run between two training steps: that load draws from the RNG state it had then.
        if i == done - 1 and fetch_rng is not None: set_rng_state(fetch_rng)
        if next(it, _END) is _END: raise _too_short(done, i)
    set_rng_state(resume["rng"])
    return enumerate(it, done)
