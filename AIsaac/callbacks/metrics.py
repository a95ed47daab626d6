"""`MetricsCB`: connects the loss, any `update/compute/reset` metrics and the `trainer.log` values to the loop, read
from the device once per phase, and fills `trainer.epoch_log` once per record."""
from __future__ import annotations

import copy
import math
import time
from typing import Any, Callable

import torch

from ..callback import Callback
from ..order import Order
from ..records import BatchLosses
from ..runtime.metric_objects import Accuracy, Mean  # noqa: F401  (Accuracy re-exported: its earlier home)
from ..runtime.batch import batch_size, first_tensor
from ..runtime.messages import warn


def optimizer_records(opt: Any) -> dict[str, float]:
    """The optimizer's learning rate and momentum as host numbers: `lr` and `mom` with one param group, `lr_0`,
    `lr_1`, ... with several; momentum is SGD's or RMSprop's `momentum` (when not 0) or Adam's first beta."""
    if opt is None: return {}
    groups = opt.param_groups
    out: dict[str, float] = {}
    for i, g in enumerate(groups):
        suffix = "" if len(groups) == 1 else f"_{i}"
        if "lr" in g: out[f"lr{suffix}"] = float(g["lr"])
        mom = g["betas"][0] if "betas" in g else g.get("momentum") or None
        if mom is not None: out[f"mom{suffix}"] = float(mom)
    return out


def metric_values(metrics: dict[str, Any]) -> dict[str, float]:
    """Each metric's value as host numbers: a scalar as `name`, a vector (per-class IoU, `average=None`) as one
    column per entry, `name_0`, `name_1`, ..."""
    out: dict[str, float] = {}
    for name, m in metrics.items():
        value = m.compute()
        if isinstance(value, torch.Tensor) and value.numel() != 1:
            out.update({f"{name}_{i}": v for i, v in enumerate(value.detach().flatten().cpu().tolist())})
        elif isinstance(value, (list, tuple)):
            out.update({f"{name}_{i}": float(v) for i, v in enumerate(value)})
        else: out[name] = float(value)
    return out


Select = Callable[..., tuple]  # select(preds, *targets) -> the metric's update arguments


def selected(select: Select, preds: Any, targets: tuple, name: str) -> tuple:
    """`select(preds, *targets)`, checked to be the tuple of the update's arguments (a type check: no sync)."""
    args = select(preds, *targets)
    if isinstance(args, tuple): return args
    raise TypeError(f"MetricsCB: the select function of metric '{name}' returned a {type(args).__name__}, but it must "
                    f"return a tuple of the metric's update arguments, e.g. lambda preds, y: (preds, y) (or "
                    f"(preds[0], y) for the first of several heads).")


class MetricsCB(Callback):
    '''Tracks the train/valid loss, metrics, and the values callbacks `trainer.log`; fills `trainer.epoch_log`

    Each metric is an `update/compute/reset` object (torcheval, torchmetrics, `Accuracy`), updated with
    `(preds, *targets)`, or a pair `(metric, select)` updated with `select(preds, *targets)`, e.g.
    `acc=(MulticlassAccuracy(), lambda p, y_cls, y_reg: (p[0], y_cls))` for a model with two heads.
    Metrics are computed on validation batches only, unless `on_train=True`: then also on training batches, as
    `train_<name>` (under AccelerateCB those are each process's own). Losses and metrics are kept on the device and
    read once per epoch phase; the loss mean is weighted by batch size (the targets' length, else the inputs').

    Each epoch's record (`trainer.epoch_log`) holds `epoch`, the `train` and `valid` losses, the metrics, and the
    records of the run: the learning rate and momentum at the end of the training phase (`optimizer_records`) and
    each phase's wall time in seconds (`train_time`, `valid_time`, measured once the phase's losses reached the host,
    so queued device work is counted). The epoch table leaves the records out (see `is_record_key`).

    An epoch with an interrupted or cancelled phase gets no row (its losses are dropped when the next phase starts).
    `state_dict` holds the whole history, the current phase's batch losses and the epoch's values so far (train
    metrics, logged values, records), so a resumed fit's records equal the uninterrupted fit's.
    '''

    order = Order.METRICS  # fills trainer.epoch_log at the cleanup_epoch of each epoch's last phase

    def __init__(self, *ms: Any, on_train: bool = False, **metrics: Any):
        for m in ms: metrics[m.__name__ if isinstance(m, type) else type(m).__name__] = m
        self.metrics: dict[str, Any] = {}
        self.selects: dict[str, Select | None] = {}
        for name, spec in metrics.items():
            m, select = spec if isinstance(spec, tuple) and len(spec) == 2 and callable(spec[1]) else (spec, None)
            if isinstance(m, type):
                raise TypeError(f"MetricsCB: metric '{name}' is the class {m.__name__}; pass an instance: "
                                f"{m.__name__}() (with its arguments, if it takes any).")
            if not all(callable(getattr(m, a, None)) for a in ("update", "compute", "reset")):
                raise TypeError(f"MetricsCB: metric '{name}' ({type(m).__name__}) needs update, compute and reset "
                                f"methods, like torcheval.metrics.MulticlassAccuracy() or a torchmetrics metric; "
                                f"or give (metric, select) with select(preds, *targets) -> its update's arguments.")
            self.metrics[name], self.selects[name] = m, select
        self.on_train = on_train
        self.train_metrics = {f"train_{n}": copy.deepcopy(m) for n, m in self.metrics.items()} if on_train else {}
        # (update, select) per metric, made once: the per-batch path only iterates them.
        self._updates = {False: [(m.update, self.selects[n], n) for n, m in self.metrics.items()],
                         True: [(m.update, self.selects[n[6:]], n) for n, m in self.train_metrics.items()]}
        self.losses = {'train': Mean(), 'valid': Mean()}
        self.metrics_epoch: list[dict[str, float]] = []
        self.losses_epoch: list[dict[str, Any]] = []
        self.losses_batch = BatchLosses()
        self._pending: list[torch.Tensor] = []  # this phase's batch losses, still on the device
        self._sizes: list[int] = []  # and their batch sizes, the weights of the phase's mean loss
        self._batch_nums: list[int] = []  # and their batch numbers, to name a non-finite one
        self._chunks: list[torch.Tensor] = []
        self._metric_device: torch.device | None = None
        self._phase_values: dict[str, float] = {}  # the epoch's train metrics and logged values, until it ends
        self._cut_last = False  # the record's last phase was cut short (a checkpoint now resumes inside the record)

    def _all_metrics(self) -> tuple: return (*self.metrics.values(), *self.train_metrics.values())

    def before_fit(self, trainer):
        for m in (*self._all_metrics(), *self.losses.values()): m.reset()
        self._pending, self._sizes, self._batch_nums, self._chunks = [], [], [], []
        self._metric_device, self._phase_values = None, {}
        self._records: dict[str, float] = {}
        self._phase_training, self._partial, self._record_done = True, False, True
        trainer.batch_losses = self.losses_batch  # the trainer's documented per-batch losses, filled here

    def log_keys(self, trainer) -> set[str]:
        """The keys this fit's epoch logs will hold: 'train', 'valid' and the metrics, as the fit trains and validates
        (values logged with `trainer.log` are named only when they are logged, so they are not listed here)."""
        return (({'train', *self.train_metrics} if trainer.run_train else set())
                | ({'valid', *self.metrics} if trainer.run_valid else set()))

    def before_epoch(self, trainer):
        self._phase_training, self._cut_last = trainer.training, False
        self._start = time.perf_counter()
        # Resumed in the middle of this phase: its losses so far came from the checkpoint (load_state_dict).
        if trainer.training and trainer.resume_at is not None: return
        # What an interrupted phase left is dropped here (it stays until now for the checkpoint written on the way out).
        self._pending, self._sizes, self._batch_nums, self._chunks = [], [], [], []
        if self._record_done:  # the record's first phase (an epoch's; with valid_every, the first after a validation)
            self._partial, self._records, self._phase_values, self._record_done = False, {}, {}, False
            for m in (*self._all_metrics(), *self.losses.values()): m.reset()

    def after_batch(self, trainer):
        '''stores losses and metrics for batch'''
        # Only a reference per batch: the weighted mean is one reduction per phase, at cleanup_epoch.
        loss = trainer.loss
        if loss is not None:  # a step callback may leave no single loss
            self._pending.append(loss.detach())
            self._sizes.append(batch_size(trainer.xb, trainer.yb))
            self._batch_nums.append(trainer.batch_num)
            if len(self._pending) == 1024:  # bound the number of live tensor objects in long epochs (no sync)
                self._chunks.append(torch.stack(self._pending))
                self._pending = []
        updates = self._updates[trainer.training]
        if not updates: return
        preds, targets = trainer.preds, trainer.yb
        if self._metric_device is None: self._move_metrics(first_tensor(preds))
        for update, select, name in updates:
            if select is None: update(preds, *targets)
            else: update(*selected(select, preds, targets, name))

    def _move_metrics(self, preds: torch.Tensor | None) -> None:
        # torcheval and torchmetrics keep their state on one device; put it where the predictions are (once a fit).
        if preds is None: return
        for m in self._all_metrics():
            if callable(getattr(m, "to", None)): m.to(preds.device)
        self._metric_device = preds.device

    def _mean_loss(self, trainer, phase: str, m: Mean) -> float | None:
        # With several processes (see AIsaac/runtime/distributed.py) each trained on its own share, so the training loss is
        # summed over them once per epoch; validation batches reach after_batch already gathered from all of them.
        if phase == 'train' and trainer.num_processes > 1:
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
        warn(f"The {phase} loss was {bad[1]} at epoch {trainer.epoch}, batch {bad[0]} (the first non-finite "
             f"one of this phase){ruined}. Lower the learning rate, look for NaN or inf in the inputs, or add "
             f"TerminateOnNaNCB to stop at the first one.", RuntimeWarning)

    def cleanup_epoch(self, trainer):
        '''compute metrics and append to epoch stats'''
        if not trainer.phase_complete:  # interrupted or cancelled: this record gets no row
            self._partial = True
            # A checkpoint written now resumes before this phase, in the same record (see state_dict).
            if trainer.last_phase: self._record_done, self._cut_last = True, True
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
        # Host numbers only: the lr and momentum are Python floats, and the time is read after the transfer above.
        phase = 'train' if trainer.training else 'valid'
        self._records[f'{phase}_time'] = time.perf_counter() - getattr(self, '_start', time.perf_counter())
        if trainer.training: self._records.update(optimizer_records(trainer.opt))
        self._phase_values.update(trainer.logged.read(trainer, 'train_' if trainer.training else ''))
        if trainer.training:
            self._phase_values.update(metric_values(self.train_metrics))
        if not trainer.last_phase: return  # the record's numbers are final after its validation
        self._record_done = True
        if self._partial: return
        losses = {k: v for k, m in self.losses.items() if (v := self._mean_loss(trainer, k, m)) is not None}
        metrics = metric_values(self.metrics) if not trainer.training else {}
        train_metrics = {k: self._phase_values.pop(k) for k in list(self._phase_values) if k.startswith("train_")}
        metrics = {**metrics, **train_metrics, **self._phase_values}  # then the logged values
        self._phase_values = {}
        self.losses_epoch.append(losses)
        self.metrics_epoch.append(metrics)
        for m in (*self._all_metrics(), *self.losses.values()): m.reset()
        step = {'step': trainer.step} if trainer.max_steps is not None or trainer.valid_every is not None else {}
        trainer.epoch_log = {'epoch': trainer.epoch, **step, **losses, **metrics, **self._records}

    def state_dict(self) -> dict[str, Any]:
        """The history, the running train/valid means, and the batch losses of a training phase in progress."""
        pending = self._chunks + ([torch.stack(self._pending)] if self._pending else [])
        in_train = self._phase_training and bool(pending)
        return {"losses_epoch": list(self.losses_epoch), "metrics_epoch": list(self.metrics_epoch),
                "losses_batch": list(self.losses_batch._loss), "training_batch": list(self.losses_batch._training),
                "means": {k: (None if m.total is None else m.total.detach().cpu(), m.weight)
                          for k, m in self.losses.items()},
                "pending": torch.cat(pending).cpu() if in_train else None,
                "sizes": list(self._sizes) if in_train else [], "batch_nums": list(self._batch_nums) if in_train else [],
                # the epoch's values read so far: train metrics and logged values, lr/momentum and phase times
                "phase_values": dict(self._phase_values), "records": dict(self._records),
                # A record whose last phase was cut short is not over for the fit resumed from here: it redoes that
                # phase, and the record's row is the uninterrupted fit's.
                "record_done": self._record_done and not self._cut_last}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.losses_epoch, self.metrics_epoch = list(state["losses_epoch"]), list(state["metrics_epoch"])
        self.losses_batch.clear()  # in place: it is also trainer.batch_losses
        self.losses_batch._loss.extend(state["losses_batch"])
        self.losses_batch._training.extend(bytes(state["training_batch"]))
        for k, (total, weight) in state["means"].items(): self.losses[k].total, self.losses[k].weight = total, weight
        for m in self.metrics.values(): m.reset()  # a validation phase in progress is redone from its start
        self._chunks = [state["pending"]] if state["pending"] is not None else []
        self._pending, self._sizes, self._batch_nums = [], list(state["sizes"]), list(state["batch_nums"])
        self._phase_values, self._records = dict(state.get("phase_values", {})), dict(state.get("records", {}))
        # A checkpoint is a point between two batches: the resumed fit completes the phase it was saved in.
        self._phase_training, self._partial = True, False
        self._record_done = bool(state.get("record_done", False))

    def plot(self, figsize: tuple[float, float] = (8, 4.5)):
        """This callback's losses and metrics as a figure; see `plot_losses`."""
        from ..display.plots import plot_losses
        return plot_losses(self.losses_batch, self.losses_epoch, self.metrics_epoch, figsize=figsize)
