"""`Trainer`: the training loop, in which every piece of work is a callback event. It reads in call order: `fit` ->
`_fit` -> `_train_epoch` -> `run_phase` -> `one_phase` -> `one_batch`; the callback set, the verbs users call around a
fit are its bases (callback_set.py, verbs.py); the processes it runs on are `trainer.processes` (runtime/distributed.py)."""
from __future__ import annotations

import itertools
import math
import os
import signal
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

import torch
from torch import nn

from .callback_set import CallbackSet
from .checks import (check_step_phases, check_train_loader, check_trainer_args, check_validation, empty_epoch_error,
                     fit_lengths, loading_note)
from .dispatch import Plan, with_cbs
from .events import EVENTS
from .exceptions import CancelBatchException, CancelEpochException, CancelFitException, add_note
from .records import BatchLosses, Logged, log_value
from .runtime.batch import loader_length, split_batch
from .runtime.distributed import Processes
from .runtime.optimizers import LR, Optimizers, check_lr, fit_optimizers
from .runtime.messages import inform
from .runtime.model_state import apply_opt_states
from .runtime.preemption import catching_preemption
from .runtime.resume import fit_setup, prepare_resume, restore_checkpoint, train_batches
from .runtime.steps import counting_steps, phase_stop, validation_due
from .verbs import TrainerVerbs

if TYPE_CHECKING:
    from .models.splitters import Splitter

class Trainer(CallbackSet, TrainerVerbs):
    """Runs `fit` as events on its callbacks; the callbacks do all the work, the training step included.

    ```python
    trainer = Trainer(dls, nn.CrossEntropyLoss(), torch.optim.Adam, model,
                      callbacks=[CoreCBs(acc=Accuracy())])
    trainer.fit(3, lr=1e-3)                      # three epochs
    trainer.fit(max_steps=300, valid_every=100)  # 300 steps, validating every 100
    preds, targets = trainer.get_preds()         # on dls.valid
    ```

    Each callback is reachable by its class name: `trainer.MetricsCB` (typed for the callbacks AIsaac ships), or
    `trainer.callback(MyCB)` (typed for any class). Below come the Trainer's methods (`fit`, `log`, `reduce_sum`,
    `gather_object`, `use_processes`), then its bases': `TrainerVerbs` (`get_preds`, `predict`, `validate`, `save`, `load`,
    `export`, `lr_find`, `profile`, `summarize_callbacks`, `summarize_model`, `show_image_batch`, `freeze`,
    `freeze_to`, `unfreeze`), `CallbackSet` (`add_callbacks`, `remove_callbacks`, `callback`, `run_callbacks`, ...).

    Args:
        dls (DataLoaders): the loaders, `dls.train` and `dls.valid` (a `valid` of None: no validation).
        loss_func (Callable | None): called as `loss_func(preds, *yb)`; None: the model output's own `loss`.
        opt_func (Callable): `opt_func(params, lr)` builds the optimizer (or a dict of them) at each fit.
        model (nn.Module): the model to train.
        callbacks (Iterable | None): the callbacks of every fit (`fit(callbacks=...)` adds some for one fit).
        splitter (Splitter | None): `splitter(model)` cuts the parameters into groups
            (see AIsaac.models.splitters); None: one group.

    Attributes:
        model (nn.Module): From `Trainer(...)`: the model, as given.
        dls (DataLoaders): From `Trainer(...)`: the loaders, as given.
        loss_func (Callable | None): From `Trainer(...)`: `loss_func(preds, *yb)`; None: the output's own `loss`.
        opt_func (Callable): From `Trainer(...)`: builds each fit's optimizers.
        splitter (Splitter | None): From `Trainer(...)`: the parameter groups' splitter.
        events (tuple[str, ...]): The event names a callback can implement (`AIsaac.events.EVENTS`).
        opts (dict[str, Optimizer]): Set by `fit`: the optimizers by name (`{'opt': ...}`, or `opt_func`'s dict).
        opt (Optimizer | None): Set by `fit`: the optimizer when there is one; None when there are several.
        lr (float | slice | Sequence[float]): Set by `fit`: its `lr`.
        n_epochs (int | None): Set by `fit`: its `n_epochs` (None when only `max_steps` bounds the fit).
        max_steps (int | None): Set by `fit`: its `max_steps`.
        valid_every (int | None): Set by `fit`: its `valid_every`.
        epochs (range | itertools.count): Set by `fit`: the epoch numbers it runs (unbounded without `n_epochs`).
        run_train (bool): Set by `fit`: whether this fit trains.
        run_valid (bool): Set by `fit`: whether this fit validates.
        step (int): Set by the trainer: the first optimizer's real steps so far in this fit (a resumed fit goes on).
        epoch (int): Set by the trainer: the current epoch.
        epoch_done (bool): Set by the trainer: the epoch's training batches are all done (not just paused).
        training (bool): Set by the trainer: True in a training phase, False in validation (no_grad, eval mode).
        last_phase (bool): Set by the trainer: the current phase is the last of its record, so `epoch_log` is final
            at its `cleanup_epoch`. A record is an epoch or, with `valid_every` or `max_steps`, each validation.
        phase_complete (bool): Set by the trainer: the phase went through its batches (a cancelled one: False).
        dl (DataLoader): Set by the trainer: the loader of the current phase.
        batch_num (int): Set by the trainer: the current batch's index in its epoch.
        batch (Any): Set by the trainer: the current batch, as the loader gave it (DeviceCB moves it).
        in_step (bool): Set by the trainer: True from a training batch's first step phase until its `after_batch`
            finished (and after a batch cut short in between, until the next one finishes): the weights, gradients or
            the callbacks' records of the batch may be between two states, so no checkpoint is taken.
        trained_to (int): Set by the trainer: how many of the epoch's training batches have finished (step and
            `after_batch`): the batch a checkpoint taken now resumes at.
        exception (BaseException | None): Set by the trainer during each `cleanup_*` event: what ended that scope (a
            cancel, an error, a KeyboardInterrupt), None when it ended normally (and outside cleanup events).
        n_inp (int): Set by `BasicTrainCB(n_inp=...)` (default 1): the leading items of a tuple batch that are inputs.
        xb (tuple): Set by the trainer after `before_batch`: the batch's inputs (`runtime.batch.split_batch`).
        yb (tuple): Set by the trainer, with `xb`: the batch's targets; `()` when it has none.
        out (Any): Set by the step callbacks (`predict`): the model's output.
        preds (Any): Set by the step callbacks (`predict`): the predictions, the output's `logits` where it has some.
        loss (Tensor | None): Set by the step callbacks (`get_loss`): the batch's loss.
        logged (Logged): Filled by `trainer.log(name, value)`: this phase's values, reduced once by MetricsCB.
        epoch_log (dict | None): Set by MetricsCB: None as each phase begins; at the `cleanup_epoch` of a record's
            last phase, `epoch`, `step` (step-based fits), the losses, the metrics and the run's records (`lr`,
            `mom`, `train_time`, ...; see `records.is_record_key`). Read it with `records.final_epoch_log`.
        batch_losses (BatchLosses | None): Set by MetricsCB, once per phase: every batch's loss; loggers read it.
        model_to_save (nn.Module | None): Set by `EMACB(use_for_saving=True)`: what `save` writes (None: `model`).
        opt_state (dict | None): Set by `load`: an optimizer state the next fit's optimizer starts from.
        preempt_signals (tuple[int, ...]): Yours to set (SIGTERM, SIGUSR1 by default): signals that stop a fit
            after the current step, checkpointed, `fit` raising `Preempted` (exit code 75; see docs/resume.md).
        preempted (int | None): Set by the trainer: the preempting signal received, or None.
        checkpoint_dir (Path | None): Set by CheckpointCB at before_fit: the folder this fit's checkpoints go to (a
            preempted fit says to resume from it); None: this fit writes none.
        loader_rng (dict | None): Set by the trainer: the RNG state the epoch's shuffle began with, and a stream's
            state at its last positions (for resuming; see runtime.resume.train_batches).
        resume_at (dict | None): Set by `fit(resume_from=...)`: the position a resumed fit has yet to reach.
        resuming (bool): Set by `fit`: whether this fit resumed from a checkpoint.
        run_id (str | None): Set by `fit`: the run's id, kept by a resumed fit.
        setup (dict | None): Set by `fit`: what the fit was started with, compared when resuming.
        processes (Processes): Set by `use_processes` (AccelerateCB installs its own for a fit): the processes the
            fit runs on; it prepares what they share, does the backward and decides how they stop together
            (AIsaac.runtime.distributed). A plain `Processes()`, one process, by default.
        is_main_process (bool): Set by `use_processes` (True with one process): whether this process logs and saves.
        num_processes (int): Set by `use_processes` (1 with one process): the processes of the fit.
        process_index (int): Set by `use_processes` (0 with one process): this process's index.
    """

    events: tuple[str, ...] = EVENTS
    preempt_signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGUSR1)
    # The table's other attributes as slots, set in __init__: read at every batch, and CPython reads slots fast however
    # many there are (a dict of over 30 names gets slow reads and calls). Callbacks' names, and what they set: the dict.
    __slots__ = ("model", "dls", "loss_func", "opt_func", "splitter", "opts", "opt", "lr", "n_epochs", "max_steps",
                 "valid_every", "epochs", "run_train", "run_valid", "step", "epoch", "epoch_done", "training",
                 "last_phase", "phase_complete", "dl", "batch_num", "batch", "in_step", "trained_to", "exception", "n_inp",
                 "xb", "yb", "out", "preds", "loss", "logged", "epoch_log", "batch_losses", "model_to_save",
                 "opt_state", "preempted", "checkpoint_dir", "loader_rng", "resume_at", "resuming", "run_id", "setup", "processes",
                 "is_main_process", "num_processes", "process_index", "_callbacks", "_methods", "_calls",
                 "_planned_cleanups", "_optimizers", "_count_batches", "_validated_at", "_stop_at", "_train_batches",
                 "_coordinated")

    def __init__(self, dls: Any, loss_func: Callable | None, opt_func: Callable, model: nn.Module,
                 callbacks: Iterable[Any] | None = None, splitter: Splitter | None = None):
        """`splitter(model)` cuts the parameters into groups (see AIsaac.models.splitters); None: one group."""
        check_trainer_args(dls, loss_func, opt_func, splitter, model)
        self.dls, self.loss_func, self.opt_func, self.model, self.splitter = dls, loss_func, opt_func, model, splitter
        self.opt: Any = None
        self.opts: dict[str, Any] = {}
        self._optimizers: Optimizers | None = None
        self.n_epochs: int | None = None
        self.max_steps: int | None = None
        self.valid_every: int | None = None
        self.run_train, self.run_valid, self.step, self.epoch, self.epoch_done = True, True, 0, 0, True
        self.training, self.last_phase, self.phase_complete, self.resuming = False, True, False, False
        self.dl: Any = None
        self.batch_num, self.batch, self.n_inp, self.xb, self.yb = 0, None, 1, (), ()
        self.in_step, self.trained_to = False, 0
        self.exception: BaseException | None = None
        self.out: Any = None
        self.preds: Any = None
        self.loss: Any = None
        self.logged = Logged()
        self.epoch_log: dict[str, Any] | None = None
        self.batch_losses: BatchLosses | None = None
        self.model_to_save: nn.Module | None = None
        self.opt_state: dict[str, Any] | None = None
        self.preempted: int | None = None
        self.checkpoint_dir: Any = None
        self.loader_rng: dict[str, Any] | None = None
        self.resume_at: dict[str, Any] | None = None
        self.run_id: str | None = None
        self.setup: dict[str, Any] | None = None
        self._count_batches, self._validated_at, self._stop_at = False, 0, math.inf
        self._train_batches: Iterator[tuple[int, Any]] | None = None
        self.use_processes(Processes())
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
        """Train for `n_epochs` epochs, or `max_steps` optimizer steps, at learning rate `lr`.

        ```python
        trainer.fit(3, lr=1e-3)
        trainer.fit(max_steps=300, valid_every=100)
        trainer.fit(3, callbacks=[OneCycleSchedulerCB()])  # for this fit
        trainer.fit(3, resume_from="ckpt")  # from ckpt/'s newest
        ```

        Args:
            n_epochs: epochs to train; 3 when neither it nor `max_steps` is given.
            lr: a number for every parameter group, `slice(lo, hi)` spread from the first group to the last, or one
                per group (see AIsaac.runtime.optimizers.spread_lrs).
            callbacks: callbacks (one, or any iterable) added for this fit only.
            train: False runs validation only.
            valid: False (or loaders whose `valid` is None) skips validation.
            resume_from: a CheckpointCB checkpoint (a file, or a folder: its newest finite one) to continue from; the
                fit must be set up as the saved one was, else an error before anything changes (docs/resume.md).
            reset_opt: False keeps the optimizer and its state while the model's parameters are the same.
            allow_changes: the setup differences `resume_from` accepts.
            max_steps: stop after that many optimizer steps, mid-epoch if need be (validating at the end); with it,
                `n_epochs` bounds nothing unless also given.
            valid_every: validate every that many optimizer steps (and at the end) instead of after each epoch; each
                validation is then a record (a table row, an `epoch_log`).
        """
        n_epochs, max_steps, valid_every = fit_lengths(n_epochs, max_steps, valid_every, train)
        lr = check_lr(lr)
        run_valid = bool(valid) and getattr(self.dls, "valid", None) is not None
        added = self.add_callbacks(callbacks) if callbacks else []
        try:
            check_step_phases(self, train, run_valid)
            check_validation(valid_every, bool(valid), run_valid)
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
            self.opt_state, self.resuming, self.checkpoint_dir = None, checkpoint is not None, None
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
        if self._budget_spent():  # a requeued job whose fit had finished: nothing trains past the budget
            return inform(self, f"The checkpoint's fit already took its max_steps={self.max_steps} optimizer steps; "
                                f"nothing left to train. Pass a larger max_steps to train on.")
        for self.epoch in self.epochs:
            if self.run_train: self._train_epoch()
            elif self.run_valid: self._validate()
            if self._budget_spent(): break

    def _budget_spent(self) -> bool: return self.max_steps is not None and self.step >= self.max_steps

    def _train_epoch(self) -> None:
        """The epoch's training batches, as phases that end at each validation point (`valid_every`) or at the step
        budget; a validation phase follows each such point, and the epoch's end (when not validating by steps)."""
        self._train_batches = None
        self.epoch_done = False
        while not self.epoch_done:
            self.run_phase(True)
            if not self.phase_complete: self.epoch_done = True  # a cancelled phase ends the epoch's training
            if self.run_valid and validation_due(self, self._stop_at, self._validated_at): self._validate()
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
        self._stop_at = phase_stop(self) if training else math.inf
        self.one_phase()

    @with_cbs('epoch', CancelEpochException)
    def one_phase(self) -> None:
        """The phase's batches, between `before_epoch` and `after_epoch` (the event names stay the seed's)."""
        stop, fresh = self._stop_at, False
        if self.training:
            # Made here, after before_epoch, and kept across the epoch's phases: a validation point pauses it.
            if self._train_batches is None:
                fresh = self.resume_at is None
                self._train_batches = self._epoch_batches()
            batches = self._train_batches
        else: batches = enumerate(self.dl)
        if self._coordinated: self.processes.begin_phase()
        load, got = batches.__next__, False
        while True:
            try: self.batch_num, self.batch = load()
            except StopIteration:
                if self.training: self.epoch_done = True
                if fresh and not got: raise empty_epoch_error(self) from None
                break
            except Exception as e:  # the loader's own error (a dataset's, a collate's), said where it happened
                add_note(e, loading_note(self, got))
                raise
            got = True
            self.one_batch()
            # A signal: stop after this finished step (with several processes, once they all know: their vote).
            if self.preempted is not None and self.processes.preempt_agreed: raise CancelFitException()
            if self.step >= stop:
                self.epoch_done = self._loader_done(batches)
                break
        self.phase_complete = True

    def _loader_done(self, batches: Iterator[tuple[int, Any]]) -> bool:
        """At a pause in the training batches (a validation point, the step budget): whether the epoch's loader is
        through. Its length says so first; where it says the end, one more batch is asked for (a stream's length can
        be wrong), and kept for the next phase if there is one."""
        n = loader_length(self.dl)
        if n is None or self.batch_num + 1 < n: return False
        more = next(batches, None)
        if more is None: return True
        self._train_batches = itertools.chain([more], batches)
        return False

    def _epoch_batches(self) -> Iterator[tuple[int, Any]]:
        """`enumerate(self.dl)`, first recording `loader_rng`; resuming, the interrupted epoch's remaining batches
        (see runtime.resume.train_batches)."""
        resume, self.resume_at = self.resume_at, None
        self.loader_rng, batches = train_batches(self, resume)
        self.trained_to = resume["batch"] if resume is not None else 0
        return batches

    @with_cbs('batch', CancelBatchException)
    def one_batch(self) -> None:
        self.xb, self.yb = split_batch(self.batch, self.n_inp)
        if self._coordinated: self.processes.before_forward()
        if self.training:
            self.in_step = True  # until the batch's after_batch finished (_end_scope)
            self.run_callbacks(('predict', 'get_loss', 'before_backward', 'backward', 'step', 'zero_grad'))
            if self._count_batches: self.step += 1
        else:
            self.run_callbacks(('predict', 'get_loss'))
            if self._coordinated: self.processes.gather_batch(self)

    def _end_scope(self, cleanup: str, exception: BaseException | None) -> None:
        """What `with_cbs` does as a scope ends: `exception` set, the processes' agreement on how it ended, the cleanup
        event, then the stop the processes agreed on where it is more severe than this process's own."""
        # A training batch whose step and after_batch finished: the fit could continue after it.
        if exception is None and self.in_step and cleanup == "cleanup_batch":
            self.in_step, self.trained_to = False, self.batch_num + 1
        self.exception, processes, stop = exception, self.processes, None  # (cleanup_fit may put one process back)
        try:
            if self._coordinated: processes.end_scope(cleanup, exception)
            if cleanup in self._planned_cleanups: self.run_cleanup(cleanup, exception)
        finally:
            self.exception = None  # only the cleanup event sees it (it holds the frames of its traceback)
            if processes.several: stop = processes.take_stop()
        if stop is not None: raise stop

    # ---- logging any value ----
    def log(self, name: str, value: torch.Tensor | float) -> None:
        """Record the scalar `value` under `name` in this phase, from any callback or step.

        MetricsCB shows its mean over the phase's batches, weighted by batch size, in the table and `epoch_log` (as
        `name` in validation, `train_<name>` in training), summed over the processes under AccelerateCB. Tensors stay
        on their device: the values are kept as references and read once per phase, like the losses. A name that is
        a loss, a metric or a record of the run, or a value with more than one element, is refused.
        """
        log_value(self, name, value)

    # ---- the processes ----
    def reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """`tensor` summed over the processes (a collective under AccelerateCB); with one process, `tensor` itself."""
        return self.processes.reduce_sum(tensor)

    def gather_object(self, obj: Any) -> list[Any] | None:
        """Every process's `obj`, by process index (a voting collective under AccelerateCB; None when another process
        stopped the fit); with one process, `[obj]`."""
        return self.processes.gather_object(obj)

    def use_processes(self, processes: Processes | None) -> None:
        """Run on `processes` from now on (None: one process again, keeping `is_main_process` and the others as they
        are, so code after a distributed fit still knows which process it is); AccelerateCB's before_fit does this."""
        if processes is None: processes = Processes()
        else: self.is_main_process, self.num_processes, self.process_index = (
            processes.is_main_process, processes.num_processes, processes.process_index)
        self.processes, self._coordinated = processes, processes.several
