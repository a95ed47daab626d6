"""`Trainer`: the training loop, in which every piece of work is a callback event."""
from __future__ import annotations

import os
import uuid
import warnings
from types import MappingProxyType
from typing import Any, Callable, Iterable, Mapping, NoReturn

import torch
from torch import nn

from .callback import as_callback_list, callback_name, flatten_callbacks, warn_misspelt_events
from .callbacks.lr_finder import LRFindMixin
from .callbacks.metrics import Mean
from .callbacks.profile import ProfileMixin
from .dispatch import build_plan, with_cbs
from .events import EVENTS, EXCLUSIVE_PHASES, nearest_event
from .exceptions import (CANCEL_EXCEPTIONS, CallbackError, CallbackSetupError, CancelBatchException,
                         CancelEpochException, CancelFitException, add_note, callback_error)
from .models.splitters import Splitter, layer_index, norm_params, param_groups
from .runtime.args import whole_number
from .runtime.batch import rows, split_batch
from .runtime.checkpoint import fit_setup, read_checkpoint, replay_batches, restore_checkpoint
from .runtime.optimizers import LR, Optimizers, build_optimizers, check_lr, reuse_optimizers
from .runtime.rng import loader_rng_state
from .tools.persist import PersistMixin, load_opt_state
from .tools.predict import PredictMixin
from .tools.show_batch import ShowBatchMixin
from .tools.summarize import SummaryMixin

# (event, callback name, planned method) -> the callable to run instead; see Trainer.wrap_plan.
PlanWrapper = Callable[[str, str, Callable], Callable]


class Trainer(PredictMixin, PersistMixin, LRFindMixin, ProfileMixin, SummaryMixin, ShowBatchMixin):
    """Runs `fit` as events on its callbacks; the callbacks do all the work, the training step included.

    State the callbacks read and write (set by the trainer unless noted):
      model, dls, loss_func, opt_func, splitter: as given (the loss is `loss_func(preds, *yb)`; with None, the model
        output's own `loss`). opts: the optimizers by name, built by `fit` from
        `opt_func(params, lr)` (see AIsaac.runtime.optimizers): `{'opt': optimizer}`, or the dict opt_func returned.
        opt: the optimizer when there is one, None when opt_func returned several (callbacks that step or schedule
        go through `opts`). lr (a number, slice or sequence), n_epochs, epochs (a range): the fit's arguments.
      opt_state: an optimizer state the next fit's new optimizer starts from, keeping the fit's lr (set by `load`).
      run_train, run_valid: whether this fit trains and validates. epoch: the current epoch number.
      training: True in a training phase, False in validation (under `torch.no_grad()`, model in eval mode).
      dl: the loader of the current phase. batch_num, batch: the current batch and its index in `dl`.
      xb, yb: the batch's inputs and targets (tuples; see AIsaac.runtime.batch.split_batch), split by the trainer
        once `before_batch` has run (so after DeviceCB and augmentations); AccelerateCB gathers `yb` in validation.
      n_inp: how many leading items of a tuple batch are inputs (1; BasicTrainCB(n_inp=...) sets it for its fits).
      out, preds, loss: written by the step callbacks (`predict`, `get_loss`): the model's output, the predictions
        (its `logits` where it has some, else the output itself) and the loss.
      logged: this epoch phase's `log(name, value)` records (name -> Mean on the device), reset by the trainer as each
        phase begins; MetricsCB reads them once per phase into `epoch_log` (`name`, or `train_<name>` for training).
      epoch_log: None as each epoch phase begins (the trainer resets it); MetricsCB fills it with the epoch's numbers
        at the cleanup_epoch of the epoch's last phase; callbacks ordered after it read it (`final_epoch_log`).
        Its keys: `epoch`, the losses (`train`, `valid`), the metrics, and the records of the run (`lr`, `mom`, or
        `lr_<group>`, `mom_<group>`; `train_time`, `valid_time` in seconds; see `is_record_key`).
      loader_rng: the RNG state each train phase began with, which replays its shuffle (CheckpointCB saves it).
      resume_at: set while a fit resumed mid-epoch has yet to reach that epoch (see AIsaac.runtime.checkpoint).
      resuming: True during a fit started with `resume_from` (callbacks with files to continue read it at before_fit).
      run_id: a short hex id of the run, new at each fit and kept by a resumed one (CheckpointCB names files with it).
      setup: what the fit was started with (n_epochs, batch size, optimizer and hyperparameters, callbacks, run_id),
        stored in checkpoints and compared when resuming.
      phase_complete: False until the current epoch phase has gone through all its batches; an interrupted or
        cancelled phase stays False, and is never recorded as a finished epoch (see `final_epoch_log`).
      is_main_process, num_processes, process_index, reduce_sum, gather_object: the distributed state (one process
        by default; AccelerateCB sets them for its fits; see AIsaac.runtime.distributed).
    Each callback is also reachable as an attribute named by its class (`trainer.MetricsCB`); `named_callbacks` and
    `plan` are read-only views of the callbacks by name and of what runs at each event.
    `freeze`, `freeze_to`, `unfreeze` choose which of the splitter's parameter groups train.
    The methods from the mixins: `get_preds`, `predict` (PredictMixin), `save`, `load`, `export`, `validate`
    (PersistMixin), `lr_find` (LRFindMixin), `profile`
    (ProfileMixin), `summarize_callbacks`, `summarize_model` (SummaryMixin), `show_image_batch` (ShowBatchMixin).
    """

    events: tuple[str, ...] = EVENTS
    # One process unless a distributed callback (AccelerateCB) sets these on the trainer for its fits.
    is_main_process: bool = True
    num_processes: int = 1
    process_index: int = 0
    epoch_log: dict[str, Any] | None = None
    loader_rng: dict[str, Any] | None
    resume_at: dict[str, Any] | None
    opt_state: dict[str, Any] | None = None
    n_inp: int = 1
    xb: tuple = ()
    yb: tuple = ()

    @staticmethod
    def reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
        """`tensor` summed over the processes (a collective under AccelerateCB); with one process, `tensor` itself."""
        return tensor

    @staticmethod
    def gather_object(obj: Any) -> list[Any] | None:
        """Every process's `obj`, by process index (a voting collective under AccelerateCB); with one process, `[obj]`."""
        return [obj]

    def __init__(self, dls: Any, loss_func: Callable | None, opt_func: Callable, model: nn.Module,
                 callbacks: Iterable[Any] | None = None, splitter: Splitter | None = None):
        """`splitter(model)` cuts the parameters into groups (see AIsaac.models.splitters); None: one group."""
        if not callable(opt_func):
            raise TypeError(f"opt_func must be callable, like torch.optim.Adam or functools.partial(torch.optim.SGD, "
                            f"momentum=0.9); got {type(opt_func).__name__}.")
        if splitter is not None and not callable(splitter):
            raise TypeError(f"splitter must be a function of the model returning parameter groups, like "
                            f"body_head_splitter; got {type(splitter).__name__}.")
        self.dls, self.loss_func, self.opt_func, self.model = dls, loss_func, opt_func, model
        self.splitter = splitter
        self.opt: Any = None
        self.opts: dict[str, Any] = {}
        self._optimizers: Optimizers | None = None
        self.epoch, self.batch_num, self.training = 0, 0, False
        self.loader_rng, self.resume_at, self.resuming = None, None, False
        self.logged: dict[str, Mean] = {}
        self.run_id: str | None = None
        self.setup: dict[str, Any] | None = None
        self.phase_complete = False
        self.cbs: list[Any] = []
        self._named: dict[str, Any] = {}
        self._plan_wrapper: PlanWrapper | None = None
        self._plan = build_plan([], self.events)
        self.add_callbacks(callbacks or [])

    # ---- read-only views, and the one way to wrap what runs ----
    @property
    def named_callbacks(self) -> Mapping[str, Any]:
        """The callbacks by the name they are reachable by (`trainer.<name>`), read-only."""
        return MappingProxyType(self._named)

    @property
    def plan(self) -> Mapping[str, tuple[Callable, ...]]:
        """For each event, the methods that run there, in order (claims applied), read-only."""
        return MappingProxyType(self._plan)

    def wrap_plan(self, wrapper: PlanWrapper | None) -> None:
        """Run every planned method through `wrapper(event, callback_name, method)` (a timer, say) from now on,
        also after the plan is rebuilt when callbacks change; `None` runs the methods themselves again."""
        self._plan_wrapper = wrapper
        self._plan = self._build_plan(self.cbs)

    def _build_plan(self, cbs: list[Any], named: Mapping[str, Any] | None = None) -> dict[str, tuple[Callable, ...]]:
        plan = build_plan(cbs, self.events)
        wrapper = self._plan_wrapper
        if wrapper is None: return plan
        names = {id(cb): n for n, cb in (named if named is not None else self._named).items()}
        return {ev: tuple(wrapper(ev, names.get(id(o := getattr(m, "__self__", m)), callback_name(o)), m) for m in ms)
                for ev, ms in plan.items()}

    # ---- the callback set: changed rarely, planned once per change ----
    def add_callbacks(self, callbacks: Any | Iterable[Any], force: bool = False) -> list[Any]:
        """Add callbacks (groups expanded recursively); returns the callbacks actually added.

        A callback whose class name is taken is an error unless `force`, which adds it as `Name_2`, `Name_3`, ...
        """
        new = [cb for cb in flatten_callbacks(callbacks) if all(cb is not c for c in self.cbs)]
        names = {}
        for cb in new:
            name = base = callback_name(cb)
            if name in self._named or name in names:
                if not force:
                    raise CallbackSetupError(f"A callback named {name} is already on this trainer; remove it first "
                                             f"(trainer.remove_callbacks(trainer.{name})) or pass force=True to add a second one.")
                n = 2
                while f"{base}_{n}" in self._named or f"{base}_{n}" in names: n += 1
                name = f"{base}_{n}"
            if hasattr(type(self), name) or name in self.__dict__:
                raise CallbackSetupError(f"A callback class named {name} would hide the trainer's own `{name}`; rename the class.")
            names[name] = cb
        for cb in new: warn_misspelt_events(cb, self.events)
        plan = self._build_plan(self.cbs + new, {**self._named, **names})  # fails before anything changes
        self.cbs.extend(new)
        self._named.update(names)
        self._plan = plan
        return new

    def remove_callbacks(self, callbacks: Any | Iterable[Any]) -> None:
        """Remove callbacks (and, for a group, its members)."""
        gone = {id(cb) for cb in flatten_callbacks(callbacks)}
        self.cbs = [cb for cb in self.cbs if id(cb) not in gone]
        self._named = {n: cb for n, cb in self._named.items() if id(cb) not in gone}
        self._plan = self._build_plan(self.cbs)

    def __getattr__(self, name: str) -> Any:
        named = self.__dict__.get("_named", {})
        if name in named: return named[name]
        raise AttributeError(f"'{type(self).__name__}' has no attribute or callback '{name}'")

    # ---- running events ----
    def run_callbacks(self, names: str | Iterable[str]) -> None:
        """Run each event in `names` on the planned callbacks, in order."""
        if isinstance(names, str): names = (names,)
        plan = self._plan
        for name in names:
            methods = plan.get(name)
            if methods is None: self._unknown_event(name)
            for method in methods:
                try: method(self)
                except CANCEL_EXCEPTIONS: raise
                except CallbackError: raise
                except Exception as e: raise self._callback_error(method, name, e) from e

    def run_cleanup(self, name: str, pending: BaseException | None = None) -> None:
        """Run cleanup event `name` on every planned callback, even when some raise. Their errors are reported together:
        `pending` (the exception already leaving the scope, if it is an error) or else the first cleanup error is
        raised, with the others attached as notes."""
        errors: list[BaseException] = []
        for method in self._plan[name]:
            try: method(self)
            except (*CANCEL_EXCEPTIONS, CallbackError) as e: errors.append(e)
            except Exception as e:
                err = self._callback_error(method, name, e)
                err.__cause__ = e
                errors.append(err)
            except BaseException as e: errors.append(e)  # KeyboardInterrupt: still let the other cleanups run
        if not errors: return
        carrier = pending if pending is not None and not isinstance(pending, CANCEL_EXCEPTIONS) else errors[0]
        for other in errors:
            if other is not carrier: add_note(carrier, f"Also raised during '{name}': {type(other).__name__}: {other}")
        if carrier is not pending: raise carrier

    def _unknown_event(self, name: str) -> NoReturn:
        guess = nearest_event(name, self.events)
        raise ValueError(f"'{name}' is not an event" + (f"; did you mean '{guess}'?" if guess else "") +
                         f" Events are: {', '.join(self.events)}.")

    def _callback_error(self, method: Callable, event: str, e: Exception) -> BaseException:
        owner = getattr(method, "__self__", method)
        if event in ("before_fit", "after_fit", "cleanup_fit"): where = f"epoch {self.epoch}"
        elif event in ("before_epoch", "after_epoch", "cleanup_epoch"): where = f"epoch {self.epoch}, {self._phase}"
        else: where = f"epoch {self.epoch}, batch {self.batch_num}, {self._phase}"
        return callback_error(callback_name(owner), event, where, e)

    @property
    def _phase(self) -> str: return "training" if self.training else "validation"

    # ---- logging any value ----
    def log(self, name: str, value: torch.Tensor | float) -> None:
        """Record the scalar `value` under `name` in this epoch phase, from any callback or step.

        MetricsCB shows its mean over the phase's batches, weighted by batch size (the rows of this process's inputs),
        in the epoch table and `epoch_log` (as `name` in validation, `train_<name>` in training), summed over the
        processes under AccelerateCB (each process logs the same names). Tensors stay on their device: the values are
        read once per phase, like the losses.
        """
        record = self.logged.get(name)
        if record is None: record = self.logged[name] = Mean()
        record.update(value, weight=rows(self.xb, self.yb))

    # ---- the loop ----
    @with_cbs('batch', CancelBatchException)
    def one_batch(self) -> None:
        self.xb, self.yb = split_batch(self.batch, self.n_inp)
        self.run_callbacks(('predict', 'get_loss'))
        if self.training: self.run_callbacks(('before_backward', 'backward', 'step', 'zero_grad'))

    @with_cbs('epoch', CancelEpochException)
    def one_epoch(self) -> None:
        for self.batch_num, self.batch in self._batches(): self.one_batch()
        self.phase_complete = True

    def _batches(self) -> Iterable[tuple[int, Any]]:
        """`enumerate(self.dl)`; a train phase first records `loader_rng`, or, resuming, replays the interrupted one."""
        if not self.training: return enumerate(self.dl)
        resume, self.resume_at = self.resume_at, None
        if resume is not None:
            self.loader_rng = resume["loader_rng"]
            return replay_batches(self.dl, resume)
        self.loader_rng = loader_rng_state(self.dl)
        return enumerate(self.dl)

    def run_phase(self, training: bool) -> None:
        """One pass over the train (or valid) loader."""
        self.training, self.epoch_log, self.logged, self.phase_complete = training, None, {}, False
        self.model.train(training)
        self.dl = self.dls.train if training else self.dls.valid
        self.one_epoch()

    @with_cbs('fit', CancelFitException)
    def _fit(self, checkpoint: dict | None = None) -> None:
        # Restored after before_fit, once the callbacks have built the schedulers and scalers it loads into.
        if checkpoint is not None: restore_checkpoint(self, checkpoint)
        for self.epoch in self.epochs:
            if self.run_train: self.run_phase(True)
            if self.run_valid:
                with torch.no_grad(): self.run_phase(False)

    # ---- optimizers and freezing ----
    def _optimizers_for(self, lr: LR, reset_opt: bool) -> Optimizers:
        # Built (or the kept ones re-used) but not yet set on the trainer: a refused resume changes nothing.
        kept = self._optimizers
        if reset_opt or kept is None or not reuse_optimizers(kept, self.model, self.splitter, lr):
            kept = build_optimizers(self.opt_func, self.model, self.splitter, lr)
        return kept

    def freeze_to(self, n: int, train_norm: bool = True) -> None:
        """Train only the splitter's groups from the `n`-th on (`n < 0` counts from the end); the others' parameters
        get no gradients and no optimizer state. With `train_norm`, normalisation layers train everywhere."""
        groups = param_groups(self.model, self.splitter)
        idx = layer_index(groups)
        n_groups = max(idx, default=0) + 1
        first = n + n_groups if n < 0 else n
        if not 0 <= first < n_groups:
            raise ValueError(f"freeze_to({n}) would leave no group training: the splitter makes {n_groups} groups "
                             f"(trainer.unfreeze() trains them all).")
        norms = {id(p) for p in norm_params(self.model)} if train_norm else set()
        for g, i in zip(groups, idx):
            for p in g["params"]:
                train = i >= first or id(p) in norms
                p.requires_grad_(train)
                if not train:
                    p.grad = None
                    for opt in self.opts.values(): opt.state.pop(p, None)

    def freeze(self, train_norm: bool = True) -> None:
        """Train only the last parameter group (the head, with `body_head_splitter`)."""
        if self.splitter is None:
            warnings.warn("freeze() with no splitter: the model is one parameter group, so all of it still trains. "
                          "Give the Trainer a splitter, e.g. Trainer(..., splitter=body_head_splitter).", UserWarning,
                          stacklevel=2)
        self.freeze_to(-1, train_norm)

    def unfreeze(self) -> None:
        """Train every parameter group."""
        self.freeze_to(0)

    def fit(self, n_epochs: int = 3, lr: LR = 1e-3, callbacks: Iterable[Any] | None = None,
            train: bool = True, valid: bool | None = True, resume_from: str | os.PathLike | None = None,
            reset_opt: bool = True, allow_changes: Iterable[str] = ()) -> None:
        """Train for `n_epochs` at learning rate `lr`; `callbacks` (one, or any iterable) are added for this fit only.

        `lr`: a number for every parameter group, `slice(lo, hi)` spread from the first group to the last, or one
        per group (see AIsaac.runtime.optimizers.spread_lrs). `reset_opt=True` builds a new optimizer for the fit;
        False keeps the optimizer and its state (moments, step counts) while the model's parameters are the same.
        `valid=False` (or None, or loaders whose `valid` is None) skips validation.
        `resume_from`: a checkpoint written by CheckpointCB (a file, or a folder: its newest finite one) to continue
        from, at the epoch and batch where it was saved. The fit must be set up as the saved one was (n_epochs, batch
        size, optimizer class and hyperparameters, callbacks); a difference is an error, raised before anything
        changes, unless named in `allow_changes` (any of "n_epochs", "batch_size", "lr", "opt", "callbacks"; see
        docs/resume.md for what each allows).
        """
        n_epochs = whole_number("n_epochs", n_epochs, minimum=0, owner="Trainer.fit", what="epochs to train")
        lr = check_lr(lr)
        run_valid = bool(valid) and getattr(self.dls, "valid", None) is not None
        added = self.add_callbacks(callbacks) if callbacks else []
        try:
            self._check_setup(train, run_valid)
            optimizers = self._optimizers_for(lr, reset_opt)
            opt = optimizers.single if optimizers.single is not None else next(iter(optimizers.opts.values()))
            setup = fit_setup(self, n_epochs, opt, added)
            # Read and checked before any event runs: a wrong file or setup fails here, with nothing changed.
            checkpoint = read_checkpoint(resume_from, self, setup, allow_changes) if resume_from is not None else None
            self.run_id = checkpoint["setup"]["run_id"] if checkpoint and "setup" in checkpoint else uuid.uuid4().hex[:8]
            self.setup = {**setup, "run_id": self.run_id}
            self.n_epochs, self.lr, self.run_train, self.run_valid = n_epochs, lr, train, run_valid
            self.epochs = range(n_epochs)
            self._optimizers = optimizers
            self.opts, self.opt = dict(optimizers.opts), optimizers.single
            if self.opt_state is not None and self.opt is not None: load_opt_state(self.opt, self.opt_state)  # from load
            self.opt_state, self.resuming = None, checkpoint is not None
            self._fit(checkpoint)
        finally:
            self.resume_at, self.resuming = None, False
            if added: self.remove_callbacks(added)

    def _check_setup(self, train: bool, valid: bool) -> None:
        """Raise before any event when the fit could not train or would silently do nothing."""
        phases = EXCLUSIVE_PHASES if train else ("predict", "get_loss") if valid else ()
        missing = [ev for ev in phases if not any(ev not in getattr(getattr(m, "__self__", m), "observes", ())
                                                  for m in self._plan.get(ev, ()))]
        if missing:
            raise CallbackSetupError(f"No callback does the step phase{'s' * (len(missing) > 1)} {', '.join(missing)}, "
                                     f"so this fit would {'train' if train else 'compute'} nothing. Add BasicTrainCB() "
                                     f"(the plain PyTorch step; MixedPrecisionCB needs it too), or a "
                                     f"callback with those methods.")
        if train:
            try: n = len(self.dls.train)
            except TypeError: n = None
            if n == 0:
                raise ValueError("The training loader is empty (0 batches), so the fit would only validate. Check the "
                                 "dataset's length, and batch_size with drop_last=True; or pass train=False to validate.")

