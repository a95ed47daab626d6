"""`ThroughputCB`: training samples (and tokens) per second in each record's `epoch_log`, the epoch table and the
trackers, counted without a host sync per batch."""
from __future__ import annotations

import time
from typing import Any, Callable

import torch

from ..callback import Callback
from ..exceptions import CallbackSetupError
from ..order import Order
from ..records import final_epoch_log
from ..runtime.batch import batch_size
from ..runtime.placement import model_device


class ThroughputCB(Callback):
    '''Training throughput: `samples_per_s`, and `tokens_per_s` and `mfu` when asked, in each record's `epoch_log`

    ```python
    trainer.fit(3, callbacks=[ThroughputCB()])                                    # samples_per_s
    ThroughputCB(tokens=lambda batch: batch["attention_mask"].sum())              # and tokens_per_s
    ThroughputCB(flops_per_sample=6 * n_params * seq_len, peak_flops=989e12)      # and mfu (H100 bf16 dense)
    ```

    Samples are the training batches' sizes (`batch_size`: the targets' first dimension, else the inputs'), Python
    ints read from shapes; `tokens(batch)` counts a batch's tokens (`trainer.batch` as the model got it, after
    DeviceCB), an int or a tensor summed on its device. Both are summed over the processes once per training phase
    (`trainer.reduce_sum`: the whole fit's throughput under AccelerateCB) and divided by the record's training time:
    its training phases from `before_epoch` to `cleanup_epoch`, read after MetricsCB brought the phase's losses to the
    host, so queued device work is counted (the data loading too, as for `train_time`). `mfu` (model flops
    utilization) is `flops_per_sample * samples_per_s / (peak_flops * num_processes)`, `peak_flops` being one
    device's flop/s. The keys are columns of the epoch table, and go to the loggers with the metrics; a record
    without a completed training phase (a validation-only fit) has none. Needs MetricsCB, whose `epoch_log` it adds to.
    '''

    # Adds to epoch_log after MetricsCB made it (and synced), before the loggers, the monitors and the table read it.
    order = Order.METRICS + 1

    def __init__(self, tokens: Callable[[Any], int | torch.Tensor] | None = None, flops_per_sample: float | None = None,
                 peak_flops: float | None = None):
        if tokens is not None and not callable(tokens):
            raise TypeError(f"ThroughputCB: tokens counts a batch's tokens, tokens(batch) -> int or tensor, e.g. "
                            f"lambda batch: batch['attention_mask'].sum(); got {tokens!r}.")
        if (flops_per_sample is None) != (peak_flops is None):
            raise ValueError("ThroughputCB: the utilization (mfu) needs both flops_per_sample (the flops of a training "
                             "step per sample, about 6 * parameters * tokens per sample for a transformer) and "
                             "peak_flops (one device's peak flop/s); give both or neither.")
        for name, v in (("flops_per_sample", flops_per_sample), ("peak_flops", peak_flops)):
            if v is not None and not v > 0: raise ValueError(f"ThroughputCB: {name} must be > 0; got {v!r}.")
        self.tokens, self.flops_per_sample, self.peak_flops = tokens, flops_per_sample, peak_flops
        self._reset()

    def __repr__(self) -> str:
        args = [f"{k}={v!r}" for k, v in (("tokens", self.tokens), ("flops_per_sample", self.flops_per_sample),
                                          ("peak_flops", self.peak_flops)) if v is not None]
        return f"ThroughputCB({', '.join(args)})"

    def _reset(self) -> None:
        # The record's totals (summed over the processes, host numbers; kept until the next record starts) and the
        # training phase's own counts.
        self.samples, self.n_tokens, self.seconds, self._record_done = 0, 0, 0., False
        self._samples: int = 0
        self._tokens: int | torch.Tensor = 0
        self._start = time.perf_counter()

    def log_keys(self, trainer) -> set[str]:
        """The keys it adds to this fit's epoch logs."""
        if not trainer.run_train: return set()
        return {"samples_per_s", *(["tokens_per_s"] if self.tokens is not None else []),
                *(["mfu"] if self.flops_per_sample is not None else [])}

    def before_fit(self, trainer):
        if not any(callable(getattr(cb, "log_keys", None)) for cb in trainer.cbs if cb is not self):
            raise CallbackSetupError("ThroughputCB adds its rates to the epoch log, but no callback fills it; add "
                                     "MetricsCB() (CoreCBs has it).")
        self._reset()

    def before_epoch(self, trainer):
        if not trainer.training: return
        if self._record_done: self._reset()  # the record's first training phase
        self._samples, self._tokens, self._start = 0, 0, time.perf_counter()

    def after_batch(self, trainer):
        if not trainer.training: return
        self._samples += batch_size(trainer.xb, trainer.yb)  # shapes: host ints, no sync
        if self.tokens is not None: self._tokens = self._tokens + self.tokens(trainer.batch)  # stays on the device

    def cleanup_epoch(self, trainer):
        if trainer.training and trainer.phase_complete: self._add_phase(trainer)
        if not trainer.last_phase: return  # the record's validation follows
        log = final_epoch_log(trainer)
        if log is not None and self.seconds > 0: log.update(self.rates(trainer))
        self._record_done = True

    def _add_phase(self, trainer) -> None:
        samples, tokens = self._samples, self._tokens
        if trainer.num_processes > 1:  # one collective per phase: [samples, tokens] of every process, summed
            device = model_device(trainer.model)
            counts = torch.stack([torch.tensor(samples, dtype=torch.int64, device=device),
                                  torch.as_tensor(tokens, device=device).to(torch.int64)])
            samples, tokens = trainer.reduce_sum(counts).tolist()
        elif isinstance(tokens, torch.Tensor): tokens = int(tokens)  # one read per phase
        self.samples, self.n_tokens = self.samples + samples, self.n_tokens + tokens
        self.seconds += time.perf_counter() - self._start  # after the reads above: the phase's device work is done

    def rates(self, trainer) -> dict[str, float]:
        """The record's rates so far: `samples_per_s`, and `tokens_per_s`, `mfu` when configured."""
        out = {"samples_per_s": self.samples / self.seconds}
        if self.tokens is not None: out["tokens_per_s"] = self.n_tokens / self.seconds
        if self.flops_per_sample is not None and self.peak_flops is not None:
            out["mfu"] = self.flops_per_sample * out["samples_per_s"] / (self.peak_flops * trainer.num_processes)
        return out
