"""`AccelerateCB`: the same fit on one or many processes (CPUs, GPUs, machines) through Hugging Face Accelerate."""
from __future__ import annotations

import copy
import weakref
import sys
from types import MappingProxyType
from typing import Any, Mapping

import torch
import torch.distributed as dist

from ..callback import Order, event_methods
from ..runtime.distributed import (BATCH, EPOCH, ERROR, FIT, OK, ProcessStopError, StopVote,
                                   collective, is_comm_failure, is_sharded, lost_error, stop_code, stop_exception)
from .accelerate_launch import (DEFAULT_TIMEOUT, check_launch, check_timeout, launched_processes, make_accelerator,
                                set_timeout, vote_group)
from .accelerate_stop import AccelerateStopCB, runs_base_method
from .basic_train import BasicTrainCB

MIXED_PRECISIONS = ("no", "fp16", "bf16")
PLAIN_PHASES = ("predict", "get_loss", "step", "zero_grad")  # BasicTrainCB's, which AccelerateCB inherits


class AccelerateCB(BasicTrainCB):
    '''Prepares model, optimizer and loaders with an `accelerate.Accelerator` (`self.acc`) and does the backward
    through it; alone, it is the whole training step (a BasicTrainCB whose backward is Accelerate's)

    Launched with several processes (`accelerate launch`, `torchrun`) each trains on its share of every batch
    and gradients are averaged (DDP). In validation, callbacks after this one see in `after_batch` the batch of all
    processes together: `trainer.preds` and the targets `trainer.yb` gathered (the duplicates the sampler pads the
    last batch with dropped; `trainer.batch` and `trainer.xb` stay this process's) and `trainer.loss` recomputed with
    `trainer.loss_func` on them (with loss_func=None, the processes' losses averaged), so metrics cover the
    validation set exactly once. Values from `trainer.log` are summed over the processes by MetricsCB. The model, optimizer and loaders
    are restored at the end of the fit; the model object the trainer was given holds the trained weights.

    Processes vote on whether one of them raised before each collective of the loop (before preparing, at the end of
    each before_epoch, once per batch, at the end of each phase and fit; see AIsaac.runtime.distributed), so a cancel
    exception or an error on any process, at any event, stops all of them after the same optimizer step, with the
    error shown once (once stopped, the unfinished epoch's training loss is each process's own). A model sharded
    with PyTorch's `fully_shard` before the fit is left as it is (only the optimizer and loaders are prepared).
    `accelerator_kwargs` go to `Accelerator` (e.g. `cpu=True`); the accelerator is made at the first fit and reused.
    `timeout`: seconds a process waits at a collective (None: the group's own), more than one process does alone (a
    save); a process lost (killed, or silent that long) ends the others with a ProcessLostError naming it.

    The step: `callbacks=[AccelerateCB(), DeviceCB(), ...]` trains as the original AIsaac's did; with a step callback
    beside it (`BasicTrainCB(n_inp=2)`, `MomentumTrainCB`, gradient accumulation) that one does predict, get_loss,
    step and zero_grad, and this one only the backward (the phases it inherits from BasicTrainCB `yields`).
    Subclassing it as the original's tutorials do works: a subclass's `before_batch` runs after DeviceCB and the
    batch transforms (`event_orders`); one with its own `__init__` may set `self.acc` itself; one whose `before_fit`
    does not call this one's prepares what it wants itself, and then nothing here votes, gathers or restores (the
    original's behaviour: each process on its own but for DDP's gradient averaging); one whose `backward` does not
    call this one's trains, but its processes no longer vote before the gradient all-reduce.
    '''

    order = Order.LAUNCH  # before DeviceCB (it checks the launch first) and before MetricsCB reads a validation batch
    event_orders = MappingProxyType({'before_batch': Order.DEFAULT})
    claims = ('backward',)
    # Class defaults: a subclass with its own __init__ or before_fit runs without state it never set.
    acc: Any = None  # an accelerate.Accelerator once a fit starts (the original's name for it)
    mixed_precision: str = 'no'
    timeout: float | None = DEFAULT_TIMEOUT
    accelerator_kwargs: Mapping[str, Any] = MappingProxyType({})
    vote: Any = None  # a StopVote once a multi-process fit starts
    pending: BaseException | None = None
    _originals: tuple | None = None  # what before_fit replaced, restored at cleanup_fit; None when it prepared nothing
    _gather = _launch_voted = _vote_forward = _voted = _phase_stop = False
    _fit_stop, _outer = OK, None
    epoch_done = fit_done = preempt_agreed = False
    _trainer: Any = None  # a weak reference to the fit's trainer (its `preempted` goes into every vote)

    def __init__(self, mixed_precision: str = 'no', *, timeout: float | None = DEFAULT_TIMEOUT,
                 **accelerator_kwargs: Any):
        if mixed_precision not in MIXED_PRECISIONS:
            raise ValueError(f"mixed_precision must be one of {MIXED_PRECISIONS}; got {mixed_precision!r}.")
        if accelerator_kwargs.get('gradient_accumulation_steps', 1) != 1:
            raise ValueError("AccelerateCB steps the optimizer every batch; accumulate gradients with a callback that "
                             "claims 'step' instead of Accelerator(gradient_accumulation_steps=...).")
        if accelerator_kwargs.get('even_batches', True) is not True:
            raise ValueError("AccelerateCB gathers validation batches of equal size from every process; leave "
                             "even_batches at True (the padded duplicates are dropped when gathering).")
        self.mixed_precision, self.accelerator_kwargs = mixed_precision, accelerator_kwargs
        self.timeout = check_timeout(timeout)

    @property
    def yields(self) -> tuple[str, ...]:  # type: ignore[override]
        """The step phases inherited unchanged from BasicTrainCB: done here only when no other callback does them."""
        return tuple(p for p in PLAIN_PHASES if getattr(type(self), p) is getattr(BasicTrainCB, p))

    @property
    def callbacks(self) -> list[Any]:
        """The group's members, made at first use (so also for a subclass that does not call this `__init__`)."""
        members = self.__dict__.get('_members')
        if members is None: members = self.__dict__['_members'] = [AccelerateStopCB(self)]
        return members

    @callbacks.setter
    def callbacks(self, value: Any) -> None: self.__dict__['_members'] = [AccelerateStopCB(self), *value]

    # ---- fit ----
    def before_fit(self, trainer):
        '''Wraps model, optimizers and loaders in accelerate'''
        self._gather, self.pending = False, None
        if self._does('predict', trainer): super().before_fit(trainer)  # the step's own start (n_inp, first checks)
        acc = self.acc = self.acc or self._make_accelerator()
        self._gather = acc.num_processes > 1
        if self._gather and self.vote is None: self.vote = StopVote(vote_group())
        if self._gather: set_timeout(self.timeout, self.vote.group, self.accelerator_kwargs)
        # Stop agreement state: a stop agreed for the fit (code), or for this epoch phase; whether this batch voted.
        self._fit_stop, self._phase_stop, self._voted, self.preempt_agreed = OK, False, False, False
        self._trainer = weakref.ref(trainer)
        self.epoch_done = self.fit_done = False
        self._outer = sys.exc_info()[1]  # an exception the fit was called while handling is not one of the fit's
        check_launch(trainer, acc)
        # Before prepare's collectives (DDP broadcasts the weights): a process that failed earlier in before_fit, or
        # in _check_launch, casts its stop at its cleanup_fit instead, which meets this vote.
        self._launch_voted = True
        if self._gather and (agreed := self._agree(OK)): raise stop_exception(agreed, self.vote.messages)
        self._originals = trainer.model, trainer.opt, trainer.opts, trainer.dls
        dls = copy.copy(trainer.dls)  # the user's DataLoaders keeps its own loaders
        loaders = [n for n in ('train', 'valid') if getattr(dls, n, None) is not None]
        names = list(trainer.opts)
        rest = (*trainer.opts.values(), *(getattr(dls, n) for n in loaders))
        if is_sharded(trainer.model):  # already sharded by fully_shard: only the optimizers and loaders are prepared
            model, prepared = trainer.model, list(acc.prepare(*rest))
        else: model, *prepared = acc.prepare(trainer.model, *rest)
        opts = dict(zip(names, prepared[:len(names)]))
        for n, dl in zip(loaders, prepared[len(names):]): setattr(dls, n, dl)
        trainer.model, trainer.opts, trainer.dls = model, opts, dls
        trainer.opt = opts[names[0]] if len(names) == 1 else None
        trainer.is_main_process, trainer.num_processes = acc.is_main_process, acc.num_processes
        trainer.process_index = acc.process_index
        trainer.reduce_sum, trainer.gather_object = self._reduce_sum, self._gather_object
        # A sharded model gathers its parameters in the forward, and DDP broadcasts buffers (BatchNorm statistics)
        # there: then a vote precedes the forward too.
        self._vote_forward = self._gather and (is_sharded(model) or (
            bool(getattr(model, 'broadcast_buffers', False)) and any(True for _ in model.buffers())))

    def _reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        # After a stop agreed for the whole fit, the processes may be at different events: no collective then; and
        # a vote first, so that a process which stopped before getting here is not left waiting for.
        if not self._gather or self._fit_stop or self._phase_stop or self._stopping(): return tensor
        with collective("trainer.reduce_sum", self._lose): return self.acc.reduce(tensor.to(self.acc.device), 'sum')

    def _gather_object(self, obj: Any) -> list[Any] | None:
        if not self._gather: return [obj]
        # After an agreed preemption every process stops at the same point: their cleanups still meet.
        if not self.preempt_agreed and (self._fit_stop or self._phase_stop or self._stopping()): return None
        out = [None] * self.acc.num_processes
        with collective("trainer.gather_object", self._lose): dist.all_gather_object(out, obj, group=self.vote.group)
        return out

    def _stopping(self) -> bool:
        """Vote OK before a collective asked for by a callback: True (and the stop left pending) when another
        process has stopped."""
        return self._agree(OK, raise_from=BATCH) != OK

    def _does(self, phase: str, trainer) -> bool:
        """Whether this callback does `phase` in this fit (it yields its inherited ones to another step callback)."""
        if phase not in self.yields: return True
        return not any(cb is not self and phase not in getattr(cb, 'observes', ()) and event_methods(cb, phase)
                       for cb in trainer.cbs)

    def _make_accelerator(self):
        return make_accelerator(self.mixed_precision, self.accelerator_kwargs)

    def cleanup_fit(self, trainer):
        '''Agrees on how the fit ended with the other processes; restores model, optimizers and loaders'''
        if self._originals is None:  # before_fit stopped before preparing anything, or a subclass's replaced it
            # The other processes wait in the launch vote only where this class's before_fit runs.
            if not self._launch_voted and runs_base_method(type(self), AccelerateCB, 'before_fit'):
                self._cast_launch_vote()
            self._launch_voted = False
            return
        if self._gather and not self._fit_stop:
            local = self._in_flight()
            code = stop_code(local, FIT)
            if code == OK and not self.fit_done: code = FIT  # a CancelFitException, already caught by the trainer
            self._agree(code, local, raise_from=ERROR)  # a cancel has nothing left to stop at the end of the fit
        if self._originals is None: return  # before_fit failed before preparing anything
        model, opt, opts, dls = self._originals
        self.acc.unwrap_model(trainer.model, keep_fp32_wrapper=False)  # takes autocast off model.forward
        trainer.model, trainer.opt, trainer.opts, trainer.dls = model, opt, opts, dls
        del trainer.reduce_sum, trainer.gather_object  # back to the trainer's one-process defaults
        self._originals, self._launch_voted = None, False
        self.acc.free_memory()  # the accelerator forgets this fit's prepared objects

    def _cast_launch_vote(self) -> None:
        # This process failed in before_fit before the launch vote (a callback ordered before this one, or
        # _check_launch): the others wait in that vote, so cast this process's stop there.
        e = sys.exc_info()[1]
        code = stop_code(e, FIT) if e is not None else FIT  # none in flight: a CancelFitException, already caught
        if self.acc is None:
            if launched_processes() < 2: return
            try: self.acc = self._make_accelerator()
            except Exception: return  # the other processes cannot have made one either
        if self.acc.num_processes < 2: return
        if self.vote is None: self.vote = StopVote(vote_group())
        self.vote(code, f"{type(e).__name__}: {e}" if code == ERROR and e is not None else "")

    # ---- the batch ----
    def _vote_before_forward(self) -> None:
        # Only when the forward holds a collective: a process cut short before it votes at its cleanup_batch.
        if not self._vote_forward or self._fit_stop or self._phase_stop: return
        agreed = self._agree(OK)
        if agreed:
            self._voted = True  # the batch is over for every process: no vote at cleanup_batch
            raise stop_exception(agreed, self.vote.messages)

    def backward(self, trainer):
        '''Using accelerate for backward pass'''
        self._vote_in_batch()
        if self.acc is None: self.acc = self._make_accelerator()  # a subclass that made none and prepared nothing
        with collective("the backward (its gradient all-reduce)", self._lose): self.acc.backward(trainer.loss)

    def after_batch(self, trainer):
        '''In validation on several processes, gathers predictions and targets (and the loss) of them all'''
        if trainer.training or not self._gather: return
        self._vote_in_batch()
        with collective("gathering the validation batch", self._lose):
            preds, yb = self.acc.gather_for_metrics((trainer.preds, trainer.yb))
            trainer.preds, trainer.yb = preds, tuple(yb)
            if trainer.loss is None: return  # (get_preds computes no loss)
            if trainer.loss_func is not None and trainer.yb: trainer.loss = trainer.loss_func(preds, *trainer.yb)
            else:  # the model's own loss: the mean of the processes' (the last batch's padding counts, a slight bias)
                trainer.loss = self.acc.gather(trainer.loss.detach()[None]).mean()

    def _vote_in_batch(self) -> None:
        # The point before this batch's collective (the gradient all-reduce, or the gather): a process that raised
        # earlier in the batch votes at its cleanup_batch instead, so every process casts one vote per batch here.
        if not self._gather: return
        agreed = self._agree(OK)
        self._voted = True
        if agreed: raise stop_exception(agreed, self.vote.messages)

    def cleanup_batch(self, trainer):
        '''Votes with the other processes when the batch was cut short before its vote'''
        if self._gather and not (self._fit_stop or self._phase_stop):
            local = self._in_flight()
            code = stop_code(local, BATCH)
            if not self._voted:
                # Cut short before the vote: by an exception still in flight, or by a CancelBatchException that
                # the trainer has already caught.
                self._agree(code or BATCH, local, raise_from=EPOCH)
            elif code >= EPOCH:  # raised after this batch's vote: tell the others at their next vote
                self._agree(code, local, raise_from=EPOCH)
        self._voted = False

    # ---- the epoch phase ----
    def _begin_phase(self) -> None:
        # At the end of before_epoch, before the loader's first batch (Accelerate's loaders broadcast RNG states
        # there): a process that raised in before_fit or before_epoch votes at its cleanup_fit or cleanup_epoch.
        if not self._gather or self._fit_stop: return
        agreed = self._agree(OK)
        if agreed: raise stop_exception(agreed, self.vote.messages)

    def cleanup_epoch(self, trainer):
        '''Agrees with the other processes on how the epoch phase ended'''
        if self._gather and not (self._fit_stop or self._phase_stop):
            local = self._in_flight()
            code = stop_code(local, EPOCH)
            if code == OK and not self.epoch_done: code = EPOCH  # a CancelEpochException, already caught
            self._agree(code, local, raise_from=FIT)  # the phase is over: a CancelEpochException has nothing to stop
        self._phase_stop, self.epoch_done = False, False

    # ---- agreeing ----
    def _lose(self) -> None:  # no collective follows a lost process (each would wait for it again)
        self._fit_stop, self._phase_stop = ERROR, True

    def _in_flight(self) -> BaseException | None:
        # In a cleanup event the trainer runs inside a `finally`, where the exception ending the batch, phase or fit
        # (if any) is still being raised; cancel exceptions caught at their own level are no longer seen here.
        e = sys.exc_info()[1]
        return None if e is self._outer else e

    def _agree(self, code: int, local: BaseException | None = None, raise_from: int | None = None) -> int:
        """Vote `code` and remember a stop agreed for the phase or the fit.

        In a cleanup event, an agreed stop of at least `raise_from` and more severe than this process's own is left
        in `pending` for AccelerateStopCB to raise once the other callbacks have cleaned up.
        """
        if is_comm_failure(local) and not isinstance(local, ProcessStopError):  # a collective elsewhere (the forward)
            self._lose()
            if raise_from is not None: self.pending = lost_error(local, "a collective")
            return ERROR
        message = f"{type(local).__name__}: {local}" if code == ERROR and local is not None else ""
        trainer = self._trainer() if self._trainer is not None else None
        with collective("AccelerateCB's stop vote", self._lose):
            agreed = self.vote(code, message, (trainer.preempted or 0) if trainer is not None else 0)
        if self.vote.preempted and trainer is not None:
            # A process got a preemption signal: every one now stops after the batch in progress (AccelerateStopCB),
            # at the same point, so the checkpoint on the way out can be written (see CheckpointCB).
            self.preempt_agreed, trainer.preempted = True, trainer.preempted or self.vote.preempted
        if agreed >= EPOCH: self._phase_stop = True
        if agreed >= FIT: self._fit_stop = agreed
        if raise_from is not None and agreed > code and agreed >= raise_from:
            self.pending = stop_exception(agreed, self.vote.messages)
        return agreed

    def __repr__(self) -> str: return f"{type(self).__name__}(mixed_precision={self.mixed_precision!r})"
