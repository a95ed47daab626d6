"""`MetricsCB`: train/valid loss and any `update/compute/reset` metrics, read from the device once per epoch;
`Mean` and `Accuracy`, metric objects that keep their state on the device of their inputs."""
from __future__ import annotations

import math
import warnings
from array import array
from typing import Any, Iterable, Sequence

import torch

from ..callback import Callback, Order


class Mean:
    """Weighted mean of scalars; the running sum stays on the values' device, so `update` never syncs."""

    def __init__(self): self.reset()

    def reset(self) -> None:
        self.total: torch.Tensor | None = None
        self.weight = 0.0

    def update(self, value: torch.Tensor | float, weight: float = 1.0) -> "Mean":
        value = value.detach().float() if isinstance(value, torch.Tensor) else torch.tensor(float(value))
        term = value * weight if value.ndim == 0 else (value * weight).sum()
        self.total = term if self.total is None else self.total + term
        self.weight += float(weight) if value.ndim == 0 else float(weight) * value.numel()
        return self

    def compute(self) -> torch.Tensor:
        """The mean so far (NaN when nothing was added)."""
        if self.total is None or self.weight == 0: return torch.tensor(float("nan"))
        return self.total / self.weight


class Accuracy:
    """Fraction of rows whose arg-max prediction equals the target (dependency-free; torcheval's works too)."""

    def __init__(self): self.reset()

    def reset(self) -> None:
        self.correct: torch.Tensor | None = None
        self.count = 0

    def update(self, preds: torch.Tensor, targets: torch.Tensor) -> "Accuracy":
        hits = (preds.argmax(dim=-1) == targets).sum()
        self.correct = hits if self.correct is None else self.correct + hits
        self.count += targets.numel()
        return self

    def compute(self) -> torch.Tensor:
        if self.correct is None or self.count == 0: return torch.tensor(float("nan"))
        return self.correct.float() / self.count


class BatchLosses(Sequence):
    """`MetricsCB.losses_batch`: a list-like of `{'training': bool, 'loss': float}`, one per batch.

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
    def clear(self) -> None: self.__init__()  # type: ignore[misc]
    def __len__(self) -> int: return len(self._loss)

    def __getitem__(self, i):
        if isinstance(i, slice): return [self[j] for j in range(*i.indices(len(self)))]
        return {'training': bool(self._training[i]), 'loss': self._loss[i]}

    def __eq__(self, other) -> bool:
        return isinstance(other, Sequence) and len(other) == len(self) and all(a == b for a, b in zip(self, other))

    def __repr__(self) -> str: return f"BatchLosses({len(self)} batches)"


class MetricsCB(Callback):
    '''Callback to track train/valid loss + metrics

    An epoch with an interrupted or cancelled phase gets no row (its losses are dropped when the next phase starts).
    `state_dict` holds the whole history and the current phase's batch losses, so a resumed fit's records equal the
    uninterrupted fit's.
    '''

    order = Order.METRICS  # fills trainer.epoch_log at the cleanup_epoch of each epoch's last phase

    def __init__(self, *ms: Any, **metrics: Any):
        for m in ms: metrics[type(m).__name__] = m
        for name, m in metrics.items():
            if not all(callable(getattr(m, a, None)) for a in ("update", "compute", "reset")):
                raise TypeError(f"MetricsCB: metric '{name}' ({type(m).__name__}) needs update, compute and reset "
                                f"methods, like torcheval.metrics.MulticlassAccuracy() or a torchmetrics metric.")
        self.metrics = metrics
        self.losses = {'train': Mean(), 'valid': Mean()}
        self.metrics_epoch: list[dict[str, float]] = []
        self.losses_epoch: list[dict[str, Any]] = []
        self.losses_batch = BatchLosses()
        self._pending: list[torch.Tensor] = []  # this phase's batch losses, still on the device
        self._sizes: list[int] = []  # and their batch sizes, the weights of the phase's mean loss
        self._batch_nums: list[int] = []  # and their batch numbers, to name a non-finite one
        self._chunks: list[torch.Tensor] = []
        self._metric_device: torch.device | None = None

    def before_fit(self, trainer):
        for m in (*self.metrics.values(), *self.losses.values()): m.reset()
        self._pending, self._sizes, self._batch_nums, self._chunks = [], [], [], []
        self._phase_training, self._partial = True, False

    def log_keys(self, trainer) -> set[str]:
        """The keys this fit's epoch logs will hold: 'train', 'valid' and the metrics, as the fit trains and validates."""
        return ({'train'} if trainer.run_train else set()) | ({'valid', *self.metrics} if trainer.run_valid else set())

    def before_epoch(self, trainer):
        self._phase_training = trainer.training
        # Resumed in the middle of this phase: its losses so far came from the checkpoint (load_state_dict).
        if trainer.training and getattr(trainer, 'resume_at', None) is not None: return
        # What an interrupted phase left is dropped here (it stays until now for the checkpoint written on the way out).
        self._pending, self._sizes, self._batch_nums, self._chunks = [], [], [], []
        if trainer.training or not trainer.run_train:  # the epoch's first phase
            self._partial = False
            for m in (*self.metrics.values(), *self.losses.values()): m.reset()

    def after_batch(self, trainer):
        '''stores losses and metrics for batch'''
        # Only a reference per batch: the weighted mean is one reduction per phase, at cleanup_epoch.
        self._pending.append(trainer.loss.detach())
        self._sizes.append(len(trainer.batch[1]))
        self._batch_nums.append(trainer.batch_num)
        if len(self._pending) == 1024:  # bound the number of live tensor objects in long epochs (no sync)
            self._chunks.append(torch.stack(self._pending))
            self._pending = []
        if not trainer.training:
            preds, targets = trainer.preds, trainer.batch[1]
            if preds.device != self._metric_device: self._move_metrics(preds.device)
            for m in self.metrics.values(): m.update(preds, targets)

    def _move_metrics(self, device: torch.device) -> None:
        # torcheval and torchmetrics keep their state on one device; put it where the predictions are.
        for m in self.metrics.values():
            if callable(getattr(m, "to", None)): m.to(device)
        self._metric_device = device

    def _mean_loss(self, trainer, phase: str, m: Mean) -> float | None:
        # With several processes (see AIsaac/distributed.py) each trained on its own share, so the training loss is
        # summed over them once per epoch; validation batches reach after_batch already gathered from all of them.
        if phase == 'train' and getattr(trainer, 'num_processes', 1) > 1:
            total = m.total.float() if m.total is not None else torch.zeros(())
            total, weight = trainer.reduce_sum(torch.stack([total, total.new_tensor(m.weight)])).tolist()
            return total / weight if weight else None
        return float(m.compute()) if m.weight else None

    def _warn_non_finite(self, trainer, values: list[float], batches: list[int]) -> None:
        # Read from the losses already brought to the host for losses_batch: no extra sync.
        bad = next(((b, v) for b, v in zip(batches, values) if not math.isfinite(v)), None)
        if bad is None: return
        phase = "training" if trainer.training else "validation"
        ruined = "; the weights are likely ruined from that step on" if trainer.training else ""
        warnings.warn(f"The {phase} loss was {bad[1]} at epoch {trainer.epoch}, batch {bad[0]} (the first non-finite "
                      f"one of this phase){ruined}. Lower the learning rate, look for NaN or inf in the inputs, or add "
                      f"TerminateOnNaNCB to stop at the first one.", RuntimeWarning, stacklevel=2)

    def cleanup_epoch(self, trainer):
        '''compute metrics and append to epoch stats'''
        if not getattr(trainer, 'phase_complete', True):  # interrupted or cancelled: this epoch gets no row
            self._partial = True
            return
        if self._pending: self._chunks.append(torch.stack(self._pending))
        if self._chunks:  # one transfer per phase, not one per batch
            losses = torch.cat(self._chunks).cpu().double()  # float64 on the CPU: an exact sum, on every backend
            weight = float(sum(self._sizes))
            mean = (losses * torch.tensor(self._sizes, dtype=torch.float64)).sum() / weight
            self.losses['train' if trainer.training else 'valid'].update(mean, weight=weight)
            values = losses.tolist()
            self.losses_batch.add(trainer.training, values)
            self._warn_non_finite(trainer, values, self._batch_nums)
            self._pending, self._sizes, self._batch_nums, self._chunks = [], [], [], []
        if trainer.training and trainer.run_valid: return  # the epoch's numbers are final after validation
        if self._partial: return
        losses = {k: v for k, m in self.losses.items() if (v := self._mean_loss(trainer, k, m)) is not None}
        metrics = {k: float(m.compute()) for k, m in self.metrics.items()} if not trainer.training else {}
        self.losses_epoch.append(losses)
        self.metrics_epoch.append(metrics)
        for m in (*self.metrics.values(), *self.losses.values()): m.reset()
        trainer.epoch_log = {'epoch': trainer.epoch, **losses, **metrics}

    def state_dict(self) -> dict[str, Any]:
        """The history, the running train/valid means, and the batch losses of a training phase in progress."""
        pending = self._chunks + ([torch.stack(self._pending)] if self._pending else [])
        in_train = self._phase_training and bool(pending)
        return {"losses_epoch": list(self.losses_epoch), "metrics_epoch": list(self.metrics_epoch),
                "losses_batch": list(self.losses_batch._loss), "training_batch": list(self.losses_batch._training),
                "means": {k: (None if m.total is None else m.total.detach().cpu(), m.weight)
                          for k, m in self.losses.items()},
                "pending": torch.cat(pending).cpu() if in_train else None,
                "sizes": list(self._sizes) if in_train else [], "batch_nums": list(self._batch_nums) if in_train else []}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.losses_epoch, self.metrics_epoch = list(state["losses_epoch"]), list(state["metrics_epoch"])
        self.losses_batch = BatchLosses()
        self.losses_batch._loss.extend(state["losses_batch"])
        self.losses_batch._training.extend(bytes(state["training_batch"]))
        for k, (total, weight) in state["means"].items(): self.losses[k].total, self.losses[k].weight = total, weight
        for m in self.metrics.values(): m.reset()  # a validation phase in progress is redone from its start
        self._chunks = [state["pending"]] if state["pending"] is not None else []
        self._pending, self._sizes, self._batch_nums = [], list(state["sizes"]), list(state["batch_nums"])
        # A checkpoint is a point between two batches: the resumed fit completes the phase it was saved in.
        self._phase_training, self._partial = True, False

    def plot(self, figsize: tuple[float, float] = (8, 4.5)):
        """This callback's losses and metrics as a figure; see `plot_losses`."""
        from ..display.plots import plot_losses
        return plot_losses(self, figsize)
