"""`Trainer`: the training loop, in which every piece of work is a callback event. It reads in call order: `fit` ->
`_fit` -> `_train_epoch` -> `run_phase` -> `one_phase` -> `one_batch`; the callback set, the verbs users call around a
fit and the one-process defaults are its bases (callback_set.py, verbs.py, runtime/distributed.py)."""
from __future__ import annotations

import itertools
import math
import os
import signal
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

import torch
from torch import nn

from .callback_set import CallbackSet
from .checks import check_step_phases, check_train_loader, check_trainer_args, fit_lengths
from .dispatch import Plan, with_cbs
from .events import EVENTS
from .exceptions import CancelBatchException, CancelEpochException, CancelFitException
from .records import BatchLosses, Logged, check_log_name
from .runtime.batch import batch_size, loader_length, split_batch
from .runtime.distributed import OneProcess
from .runtime.optimizers import LR, Optimizers, check_lr, fit_optimizers
from .runtime.model_state import apply_opt_states
from .runtime.preemption import catching_preemption
from .runtime.resume import fit_setup, prepare_resume, replay_batches, restore_checkpoint
from .runtime.rng import loader_rng_state
from .runtime.steps import counting_steps
from .verbs import TrainerVerbs

if TYPE_CHECKING:
    from .models.splitters import Splitter

class Trainer(CallbackSet, TrainerVerbs, OneProcess):
    """Runs `fit` as events on its callbacks; the callbacks do all the work, the training step included.

    ```python
    trainer = Trainer(dls, nn.CrossEntropyLoss(), torch.optim.Adam, model,
                      callbacks=[DeviceCB(), BasicTrainCB(), MetricsCB(acc=Accuracy()), ProgressCB()])
    trainer.fit(3, lr=1e-3)                               # epochs
    trainer.fit(max_steps=300, valid_every=100)           # a step budget, validated every 100 steps
    ```

    Each callback is reachable as an attribute named by its class (`trainer.MetricsCB`, or typed:
    `trainer.callback(MetricsCB)`); the state below is what callbacks read and write (the trainer sets it unless
    another writer is named). The methods users call around a fit (`get_preds`, `predict`, `validate`, `save`,
    `load`, `export`, `lr_find`, `profile`, `summarize_callbacks`, `summarize_model`, `show_image_batch`, `freeze`,
    `freeze_to`, `unfreeze`) are inherited from `TrainerVerbs` (AIsaac/verbs.py); those of the callback set
    (`add_callbacks`, `remove_callbacks`, `cbs`, `callback`, `run_callbacks`, `wrap_plan`, ...) from `CallbackSet`.

    Attributes:
        model (nn.Module): the model, as given. dls: the loaders (`dls.train`, `dls.valid`), as given.
        loss_func (Callable | None): `loss_func(preds, *yb)`; `loss_func(preds)` for batches without targets; None: the
            model output's own `loss`. opt_func, splitter: as given.
        opts (dict[str, Optimizer]): the fit's optimizers by name, from `opt_func(params, lr)`: `{'opt': optimizer}`,
            or the dict opt_func returned. opt: the optimizer when there is one, None when there are several.
        lr, n_epochs (int | None), max_steps (int | None), valid_every (int | None): the fit's arguments; epochs: the
            range of epoch numbers (unbounded when only `max_steps` bounds the fit).
        step (int): optimizer steps so far in this fit (the first optimizer's real steps: an accumulation or a skipped
            float16 step does not count); a resumed fit continues the count.
        run_train, run_valid (bool): whether this fit trains and validates. epoch (int): the current epoch.
        epoch_done (bool): the current epoch's training batches are all done (False while a validation point or the
            step budget paused it).
        training (bool): True in a training phase, False in validation (under `torch.no_grad()`, model in eval mode).
        last_phase (bool): the current phase is the last of its record, so `epoch_log` is final at its
            `cleanup_epoch` (validation, or training in a fit without validation). A record is an epoch, or, with
            `valid_every` or `max_steps`, each validation.
        phase_complete (bool): False until the current phase went through all its batches; an interrupted or
            cancelled phase stays False and is never recorded.
        dl: the loader of the current phase. batch_num (int), batch: the current batch and its index in its epoch.
        xb, yb (tuple): the batch's inputs and targets (see `runtime.batch.split_batch`), split once `before_batch`
            has run; `n_inp` (int) leading items of a tuple batch are inputs (`BasicTrainCB(n_inp=...)` sets it).
        out, preds, loss: written by the step callbacks (`predict`, `get_loss`): the model's output, the predictions
            (its `logits` where it has some) and the loss.
        logged (Logged): this phase's `log(name, value)` values, reduced once per phase (by MetricsCB).
        epoch_log (dict | None): None as each phase begins; MetricsCB fills it at the `cleanup_epoch` of a record's
            last phase: `epoch`, `step` (step-based fits), the losses, the metrics and the records of the run (`lr`,
            `mom`, `train_time`, ...; see `records.is_record_key`). Read it with `records.final_epoch_log`.
        batch_losses (BatchLosses | None): every batch's loss, filled once per phase by MetricsCB; loggers read it.
        loader_rng, resume_at, resuming, run_id, setup: the resume state (see AIsaac.runtime.resume): the RNG state
            the epoch's shuffle began with; the position a resumed fit has yet to reach; whether this fit resumed;
            the run's id (kept by a resumed fit); what the fit was started with, compared when resuming.
        opt_state (dict | None): an optimizer state the next fit's optimizer starts from (set by `load`).
        model_to_save (nn.Module | None): the module whose weights `save`, `export` and SaveBestCB write; None (reset at
            each fit): `model`. EMACB(use_for_saving=True) sets it to its averaged copy (`model_state.saving_model`).
        preempt_signals (tuple[int, ...]): signals that stop a fit after the current batch, a checkpoint written on the
            way out where CheckpointCB is, `fit` then raising `Preempted` (exit code 75; SIGTERM, SIGUSR1 by default).
            preempted: the signal received, or None.
        is_main_process, num_processes, process_index, reduce_sum, gather_object: the distributed state (one process
            unless AccelerateCB sets them; see AIsaac.runtime.distributed).
    """

    events: tuple[str, ...] = EVENTS
    epoch_log: dict[str, Any] | None = None
    batch_losses: BatchLosses | None = None
    opt_state: dict[str, Any] | None = None
    n_inp: int = 1
    xb: tuple = ()
    yb: tuple = ()
    step: int = 0
    n_epochs: int | None = None
    max_steps: int | None = None
    valid_every: int | None = None
    last_phase: bool = True
    # Signals that stop a fit cleanly after the current step (checkpoint written, exit code 75); see runtime.preemption.
    preempt_signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGUSR1)
    preempted: int | None = None
    epoch_done: bool = True
    _count_batches: bool = False
    _validated_at: int = 0
    run_train: bool = True
    run_valid: bool = True
    model_to_save: nn.Module | None = None
    out: Any = None
    preds: Any = None
    loss: Any = None

    def __init__(self, dls: Any, loss_func: Callable | None, opt_func: Callable, model: nn.Module,
                 callbacks: Iterable[Any] | None = None, splitter: Splitter | None = None):
        """`splitter(model)` cuts the parameters into groups (see AIsaac.models.splitters); None: one group."""
        check_trainer_args(dls, loss_func, opt_func, splitter)
        self.dls, self.loss_func, self.opt_func, self.model, self.splitter = dls, loss_func, opt_func, model, splitter
        self.opt: Any = None
        self.opts: dict[str, Any] = {}
        self._optimizers: Optimizers | None = None
        self.epoch, self.batch_num, self.training, self.phase_complete = 0, 0, False, False
        self.loader_rng: dict[str, Any] | None = None
        self.resume_at: dict[str, Any] | None = None
        self.resuming = False
        self.logged = Logged()
        self.run_id: str | None = None
        self.setup: dict[str, Any] | None = None
        self._set_plan(Plan(self.events))
        self.add_callbacks(callbacks or [])

    def __repr__(self) -> str:
        n = sum(p.numel() for p in self.model.parameters())
        return (f"Trainer({type(self.model).__name__} with {n:,} parameters; callbacks: "
                f"{', '.join(self._callbacks.named) or 'none'})")

    # ---- the loop, in call order ----
    def fit(self, n_epochs: int | None = None, lr: LR = 1e-3, callbacks: Iterable[Any] | None = None,
            train: bool = True, valid: bool | None = True, resume_from: str | os.PathLike | None = None,
            reset_opt: bool = True, allow_changes: Iterable[str] = (), max_steps: int | None = None,
            valid_every: int | None = None) -> None:
        """Train for `n_epochs` (3 when neither it nor `max_steps` is given) at learning rate `lr`; `callbacks` (one, or
        any iterable) are added for this fit only.

        `max_steps`: stop after that many optimizer steps, mid-epoch if need be (validating at the end); with it,
        `n_epochs` bounds nothing unless also given. `valid_every`: validate every that many optimizer steps (and at
        the end) instead of after each epoch; each validation is a record (a table row, an `epoch_log`).
        `lr`: a number for every parameter group, `slice(lo, hi)` spread from the first group to the last, or one
        per group (see AIsaac.runtime.optimizers.spread_lrs). `reset_opt=False` keeps the optimizer and its state
        while the model's parameters are the same. `valid=False` (or loaders whose `valid` is None) skips validation.
        `resume_from`: a checkpoint written by CheckpointCB (a file, or a folder: its newest finite one) to continue
        from, where it was saved. The fit must be set up as the saved one was; a difference is an error, raised
        before anything changes, unless named in `allow_changes` (see docs/resume.md).
        """
        n_epochs, max_steps, valid_every = fit_lengths(n_epochs, max_steps, valid_every, train)
        lr = check_lr(lr)
        run_valid = bool(valid) and getattr(self.dls, "valid", None) is not None
        added = self.add_callbacks(callbacks) if callbacks else []
        try:
            check_step_phases(self, train, run_valid)
            if train: check_train_loader(self.dls)
            optimizers = fit_optimizers(self._optimizers, self.opt_func, self.model, self.splitter, lr, reset_opt)
            setup = fit_setup(self, n_epochs, optimizers.first, added, max_steps)
            # Read and checked before any event runs: a wrong file or setup fails here, with nothing changed.
            checkpoint, self.run_id = prepare_resume(self, resume_from, setup, allow_changes)
            self.setup = {**setup, "run_id": self.run_id}
            self.n_epochs, self.lr, self.run_train, self.run_valid = n_epochs, lr, train, run_valid
            self.max_steps, self.valid_every, self.step, self.model_to_save = max_steps, valid_every, 0, None
            self.epochs = range(n_epochs) if n_epochs is not None else itertools.count()
            self._optimizers, self.opts, self.opt = optimizers, dict(optimizers.opts), optimizers.single
            # From load: every optimizer starts from its saved state.
            if self.opt_state is not None: apply_opt_states(self.opts, self.opt_state)
            self.opt_state, self.resuming = None, checkpoint is not None
            with counting_steps(self, optimizers.first) as self._count_batches, \
                    catching_preemption(self, self.preempt_signals):
                self._fit(checkpoint)
        finally:
            self.resume_at, self.resuming = None, False
            if added: self.remove_callbacks(added)

    @with_cbs('fit', CancelFitException)
    def _fit(self, checkpoint: dict | None = None) -> None:
        # Restored after before_fit, once the callbacks have built the schedulers and scalers it loads into.
        if checkpoint is not None: restore_checkpoint(self, checkpoint)
        self._validated_at = self.step
        for self.epoch in self.epochs:
            if self.run_train: self._train_epoch()
            elif self.run_valid: self._validate()
            if self._budget_spent(): break

    def _budget_spent(self) -> bool: return self.max_steps is not None and self.step >= self.max_steps

    def _train_epoch(self) -> None:
        """The epoch's training batches, as phases that end at each validation point (`valid_every`) or at the step
        budget; a validation phase follows each such point, and the epoch's end (when not validating by steps)."""
        self._train_batches: Iterator[tuple[int, Any]] | None = None
        self.epoch_done = False
        while not self.epoch_done:
            self.run_phase(True)
            if not self.phase_complete: self.epoch_done = True  # a cancelled phase ends the epoch's training
            due = self._budget_spent() or (self.step >= self._stop_at if self.valid_every else self.epoch_done)
            # Validated by steps: the fit's end is validated too, when steps were taken since the last validation.
            last_epoch = self.n_epochs is not None and self.epoch == self.n_epochs - 1
            if self.valid_every and self.epoch_done and last_epoch and self.step > self._validated_at: due = True
            if self.run_valid and due: self._validate()
            if self._budget_spent(): return

    def _validate(self) -> None:
        with torch.no_grad(): self.run_phase(False)
        self._validated_at = self.step

    def run_phase(self, training: bool) -> None:
        """One phase: training batches (up to the next validation point or the step budget), or a validation pass."""
        self.training, self.epoch_log, self.logged, self.phase_complete = training, None, Logged(), False
        self.last_phase = not training or not self.run_valid
        self.model.train(training)
        self.dl = self.dls.train if training else self.dls.valid
        stops = [self.max_steps] if self.max_steps is not None else []
        if self.valid_every and self.run_valid: stops.append((self.step // self.valid_every + 1) * self.valid_every)
        self._stop_at = min(stops) if training and stops else math.inf
        self.one_phase()

    @with_cbs('epoch', CancelEpochException)
    def one_phase(self) -> None:
        """The phase's batches, between `before_epoch` and `after_epoch` (the event names stay the seed's)."""
        stop = self._stop_at
        if self.training:
            # Made here, after before_epoch, and kept across the epoch's phases: a validation point pauses it.
            if self._train_batches is None: self._train_batches = self._epoch_batches()
            batches = self._train_batches
        else: batches = enumerate(self.dl)
        for self.batch_num, self.batch in batches:
            self.one_batch()
            if self.preempted is not None: raise CancelFitException()  # a signal: stop after this finished step
            if self.step >= stop:
                self.epoch_done = self.batch_num + 1 == loader_length(self.dl)
                break
        else:
            if self.training: self.epoch_done = True
        self.phase_complete = True

    def _epoch_batches(self) -> Iterator[tuple[int, Any]]:
        """`enumerate(self.dl)`, first recording `loader_rng`; resuming, the interrupted epoch's remaining batches."""
        resume, self.resume_at = self.resume_at, None
        if resume is not None:
            self.loader_rng = resume["loader_rng"]
            return iter(replay_batches(self.dl, resume))
        self.loader_rng = loader_rng_state(self.dl)
        return enumerate(self.dl)

    @with_cbs('batch', CancelBatchException)
    def one_batch(self) -> None:
        self.xb, self.yb = split_batch(self.batch, self.n_inp)
        self.run_callbacks(('predict', 'get_loss'))
        if self.training:
            self.run_callbacks(('before_backward', 'backward', 'step', 'zero_grad'))
            if self._count_batches: self.step += 1

    # ---- logging any value ----
    def log(self, name: str, value: torch.Tensor | float) -> None:
        """Record the scalar `value` under `name` in this phase, from any callback or step.

        MetricsCB shows its mean over the phase's batches, weighted by batch size, in the table and `epoch_log` (as
        `name` in validation, `train_<name>` in training), summed over the processes under AccelerateCB. Tensors stay
        on their device: the values are kept as references and read once per phase, like the losses. A name that is
        a loss, a metric or a record of the run, or a value with more than one element, is refused.
        """
        if isinstance(value, torch.Tensor) and value.ndim and value.numel() != 1:
            raise ValueError(f"trainer.log('{name}', ...) takes one number; got a tensor of shape {tuple(value.shape)}. "
                             f"Log its mean (value.mean()) or each entry under its own name.")
        if name not in self.logged: check_log_name(self, name)  # once per name and phase
        self.logged.add(name, value, batch_size(self.xb, self.yb))
