"""The epoch-log contract: when `trainer.epoch_log` is final (`final_epoch_log`), which keys are records of the run
rather than numbers of the epoch table (`is_record_key`), which keys a fit will produce (`epoch_log_keys`,
`check_log_key`); and the per-batch losses (`BatchLosses`, `trainer.batch_losses`) and logged values (`Logged`,
`trainer.logged`) the trainer shares with loggers."""
from __future__ import annotations

import math
import re
from array import array
from typing import Any, Iterable, Sequence

import torch

from .exceptions import CallbackSetupError
from .runtime.batch import batch_size
from .runtime.messages import inform


def final_epoch_log(trainer: Any) -> dict | None:
    """`trainer.epoch_log` once the epoch's numbers are final, else None.

    The trainer resets `epoch_log` to None as each phase begins; MetricsCB (order `Order.METRICS`) fills it at the
    `cleanup_epoch` of a record's last phase (`trainer.last_phase`: validation, or training in a fit without
    validation). A record is an epoch, or, with `fit(valid_every=K)` or `max_steps`, each validation (its `step` key
    says where). A callback with a higher order reads it there, from this function; nobody clears it, so it still
    holds the last record after the fit. A record with a phase that was interrupted or cancelled
    (`trainer.phase_complete` False) has no final log.
    """
    if not trainer.last_phase: return None  # the record's validation phase still follows
    if not trainer.phase_complete: return None  # an interrupted or cancelled phase: no record
    log = trainer.epoch_log
    return log if log is not None and log.get("epoch") == trainer.epoch else None


_RECORD_KEY = re.compile(r"(lr|mom)(_\d+)?|(train|valid)_time")


def is_record_key(key: str) -> bool:
    """Whether an `epoch_log` key is a record of the run (`lr`, `lr_<group>`, `mom`, `mom_<group>`, `train_time`,
    `valid_time`) rather than the epoch number, a loss or a metric; the epoch table shows only the latter."""
    return _RECORD_KEY.fullmatch(key) is not None


def epoch_log_keys(trainer: Any) -> set[str] | None:
    """The keys the trainer's callbacks will put in `epoch_log` this fit (from their `log_keys(trainer)` methods), or
    None when no callback produces an epoch log at all."""
    producers = [cb for cb in trainer.cbs if callable(getattr(cb, "log_keys", None))]
    if not producers: return None
    return {"epoch"}.union(*(cb.log_keys(trainer) for cb in producers))


def check_log_key(cb: Any, key: str | None, trainer: Any) -> None:
    """Check at fit start that something will produce `key` in `epoch_log` for the callback `cb`.

    Raise CallbackSetupError when no callback fills the epoch log, or when `key` is a loss or metric that this fit
    will not produce (e.g. 'valid' in a fit without validation). Any other unknown key may still come from
    `trainer.log(name, value)` (as `name`, or `train_name` for values logged in training), whose names are known only
    once logged: it is accepted with a note on the "AIsaac" logger, and checked when the first epoch ends.
    """
    keys = epoch_log_keys(trainer)
    if keys is None:
        raise CallbackSetupError(f"{type(cb).__name__} reads the epoch log, but no callback fills it, so it would do "
                                 f"nothing; add MetricsCB() (with the metrics you want to use).")
    if key is None or key in keys or is_record_key(key): return
    known = {"train", "valid"}  # what the producers could put there in some fit: refused when this fit will not
    for producer in trainer.cbs:
        if callable(getattr(producer, "log_keys", None)):
            known |= set(getattr(producer, "metrics", {})) | set(getattr(producer, "train_metrics", {}))
    if key in known:
        raise CallbackSetupError(f"{type(cb).__name__} monitors '{key}', which no callback puts in the epoch log this "
                                 f"fit (it will hold: {', '.join(sorted(keys))}); pass monitor= one of those, add the "
                                 f"metric to MetricsCB, or fit with validation for 'valid'.")
    inform(trainer, f"{type(cb).__name__} monitors '{key}', which no callback names in advance (the epoch log will "
                    f"hold: {', '.join(sorted(keys))}); it must come from trainer.log('{key}', ...) (or "
                    f"trainer.log('{key.removeprefix('train_')}', ...) in training), and is checked when the first "
                    f"epoch ends.")


class BatchLosses(Sequence):
    """`trainer.batch_losses`: a list-like of `{'training': bool, 'loss': float}`, one per batch, filled once per phase
    by MetricsCB (also its `losses_batch`); loggers read it.

    Stored as 9 bytes a batch (a float64 array and a byte array) rather than a dict each, so long fits stay small.
    """

    def __init__(self, records: Iterable[dict] = ()):
        self._loss, self._training = array('d'), bytearray()
        self.extend(records)

    def add(self, training: bool, losses: Sequence[float]) -> None:
        """Append one record per loss in `losses`, all of phase `training`."""
        self._loss.extend(losses)
        self._training.extend(b"\x01" * len(losses) if training else bytes(len(losses)))

    def append(self, record: dict) -> None: self.add(bool(record['training']), [float(record['loss'])])
    def extend(self, records: Iterable[dict]) -> None:
        for r in records: self.append(r)
    def clear(self) -> None: self._loss, self._training = array('d'), bytearray()
    def __len__(self) -> int: return len(self._loss)

    def __getitem__(self, i):
        if isinstance(i, slice): return [self[j] for j in range(*i.indices(len(self)))]
        return {'training': bool(self._training[i]), 'loss': self._loss[i]}

    def __eq__(self, other) -> bool:
        return isinstance(other, Sequence) and len(other) == len(self) and all(a == b for a, b in zip(self, other))

    def __repr__(self) -> str: return f"BatchLosses({len(self)} batches)"


class Logged:
    """`trainer.logged`: the values `trainer.log(name, value)` recorded in this phase, kept as references on their device
    (a list append per call, no tensor arithmetic) and reduced once per phase by `read`."""

    def __init__(self) -> None:
        self.values: dict[str, list] = {}
        self.weights: dict[str, list[int]] = {}

    def __bool__(self) -> bool: return bool(self.values)
    def __contains__(self, name: str) -> bool: return name in self.values
    def __iter__(self): return iter(self.values)
    def keys(self): return self.values.keys()
    def __getitem__(self, name: str) -> list: return self.values[name]
    def __len__(self) -> int: return len(self.values)
    def names(self) -> list[str]: return list(self.values)

    def add(self, name: str, value: Any, weight: int) -> None:
        values = self.values.get(name)
        if values is None: values, self.weights[name] = self.values.setdefault(name, []), []
        values.append(value)
        self.weights[name].append(weight)

    def sums(self) -> tuple[list[str], torch.Tensor | None]:
        """The names and a (names, 2) float32 tensor of (weighted sum, total weight), on the values' device."""
        names = sorted(self.values)  # the same order on every process
        if not names: return names, None
        rows = []
        dev = next((v.device for v in self.values[names[0]] if isinstance(v, torch.Tensor)), torch.device("cpu"))
        for n in names:
            vals = torch.stack([v.detach().float().to(dev) if isinstance(v, torch.Tensor) else
                                torch.tensor(float(v), device=dev) for v in self.values[n]])
            w = torch.tensor(self.weights[n], dtype=torch.float32, device=dev)
            rows.append(torch.stack([(vals * w).sum(), w.sum()]))
        return names, torch.stack(rows)

    def read(self, trainer: Any, prefix: str = "") -> dict[str, float]:
        """Weighted means by name (`prefix + name`), summed over the processes under a distributed callback, in one
        transfer."""
        names, sums = self.sums()
        if trainer.num_processes > 1:
            # The processes sum the same names in the same order, or say which differ (a reduce would wait forever).
            everyone = trainer.gather_object(names)
            if everyone is None: return {}  # another process stopped the fit
            if any(other != names for other in everyone):
                listed = "; ".join(f"process {i}: {', '.join(n) or 'nothing'}" for i, n in enumerate(everyone))
                raise ValueError(f"trainer.log was given different names on different processes in this "
                                 f"{'training' if trainer.training else 'validation'} phase ({listed}); log the same "
                                 f"names on every process (log a 0 with weight where a process has nothing).")
            if sums is None: return {}
            sums = trainer.reduce_sum(sums)
        if sums is None: return {}
        return {prefix + n: t / w if w else math.nan for n, (t, w) in zip(names, sums.tolist())}


def log_value(trainer: Any, name: str, value: Any) -> None:
    """`trainer.log`'s work: refuse a value of more than one element, and (once per name and phase) a name that is
    taken; then keep a reference to the value with the batch's size as its weight."""
    if isinstance(value, torch.Tensor) and value.ndim and value.numel() != 1:
        raise ValueError(f"trainer.log('{name}', ...) takes one number; got a tensor of shape {tuple(value.shape)}. "
                         f"Log its mean (value.mean()) or each entry under its own name.")
    logged = trainer.logged
    values = logged.values.get(name)
    if values is None:  # the name's first value in this phase: check the name, start its lists
        check_log_name(trainer, name)
        logged.add(name, value, batch_size(trainer.xb, trainer.yb))
    else:  # Logged.add, written out: the usual call
        values.append(value)
        logged.weights[name].append(batch_size(trainer.xb, trainer.yb))


def check_log_name(trainer: Any, name: str) -> None:
    """Refuse a `trainer.log` name that would replace a loss, a metric, the epoch or step number, or a record of the run
    in `epoch_log` (early stopping and save-best would then decide on it), or that is empty, padded with spaces, or
    begins with 'train_' (where a training value's key and a validation value's would meet)."""
    if not isinstance(name, str):
        raise TypeError(f"trainer.log(name, value) takes the name as a string; got {type(name).__name__} {name!r}.")
    if not name.strip():
        raise ValueError(f"trainer.log({name!r}, ...) needs a name of letters, digits or underscores, shown in the table "
                         f"and the epoch log; got {'an empty' if not name else 'a blank'} one.")
    if name != name.strip():
        raise ValueError(f"trainer.log({name!r}, ...): the name has leading or trailing spaces, which the table and the "
                         f"CSV would hide; log it as {name.strip()!r}.")
    if name.startswith("train_"):
        raise ValueError(f"trainer.log({name!r}, ...): 'train_' is the prefix the epoch log gives values logged in "
                         f"training (log('x') in training shows as 'train_x'), so this name would meet one of those; "
                         f"log '{name[6:]}' instead (in training it shows as '{name}').")
    key = ("train_" if trainer.training else "") + name
    taken = {"epoch", "step", "train", "valid"}
    for cb in trainer.cbs:
        taken |= set(getattr(cb, "metrics", None) or ()) | set(getattr(cb, "train_metrics", None) or ())
    if name in taken or key in taken or is_record_key(name) or is_record_key(key):
        raise ValueError(f"trainer.log('{name}', ...) would replace '{key}' in the epoch log, which is a loss, a metric "
                         f"or a record of the run; log the value under another name (e.g. '{name}_logged').")
