"""`AccelerateCB`: the same fit on one or many processes (CPUs, GPUs, machines) through Hugging Face Accelerate."""
from __future__ import annotations

from types import MappingProxyType
from typing import Any, Mapping

from ..callback import Order, event_methods
from ..runtime.distributed import ERROR, FIT, AcceleratedProcesses, StopVote, stop_code
from .accelerate_launch import (DEFAULT_TIMEOUT, check_launch, check_timeout, launched_processes, make_accelerator,
                                set_timeout, vote_group)
from .basic_train import BasicTrainCB

MIXED_PRECISIONS = ("no", "fp16", "bf16")
PLAIN_PHASES = ("predict", "get_loss", "step", "zero_grad")  # BasicTrainCB's, which AccelerateCB inherits


class AccelerateCB(BasicTrainCB):
    '''Runs the fit on the processes of the launch (`accelerate launch`, `torchrun`; one process without one) through
    an `accelerate.Accelerator` (`self.acc`); alone, it is the whole training step (a BasicTrainCB whose backward is
    Accelerate's)

    At before_fit it installs an `AcceleratedProcesses` as `trainer.processes` (AIsaac.runtime.distributed), which
    prepares the model, optimizers and loaders (each process trains on its share of every batch, gradients averaged:
    DDP; a model sharded with `fully_shard` is left as it is), does the backward, sums and gathers, and makes the
    processes agree on every stop: a cancel or an error on any process, at any event, stops all of them after the same
    optimizer step, with the error shown once; a preemption signal to one stops all after the same batch. In
    validation, callbacks see in `after_batch` the batch of all processes together: `trainer.preds` and the targets
    `trainer.yb` gathered (the sampler's padding dropped; `trainer.batch` and `trainer.xb` stay this process's), and
    `trainer.loss` recomputed on them. At cleanup_fit the model object the trainer was given, holding the trained
    weights, its optimizers and loaders are put back, and `trainer.processes` is one process again.

    `accelerator_kwargs` go to `Accelerator` (e.g. `cpu=True`); the accelerator is made at the first fit and reused.
    `timeout`: seconds a process waits at a collective (None: the group's own), more than one process does alone (a
    save); a process lost (killed, or silent that long) ends the others with a ProcessLostError naming it.

    The step: `callbacks=[AccelerateCB(), DeviceCB(), ...]` trains as the original AIsaac's did; with a step callback
    beside it (`BasicTrainCB(n_inp=2)`, `MomentumTrainCB`) that one does predict, get_loss, step and zero_grad, and
    this one only the backward (the phases it inherits from BasicTrainCB `yields`). Subclassing it as the original's
    tutorials do works: a subclass that defines `before_batch` runs at `Order.DEFAULT`, after DeviceCB and the batch
    transforms, as the original's did (set `order` to choose); one with its own `__init__` may set `self.acc`; one
    whose `before_fit` does not call this one's prepares what it wants itself, and then nothing is installed (the
    original's behaviour: each process on its own but for DDP's gradient averaging). A process that fails before this
    callback's before_fit tells the others at its cleanup_fit, unless a subclass replaced before_fit: then they wait
    for it up to `timeout`.
    '''

    order = Order.LAUNCH  # before DeviceCB moves anything: the callbacks after it see the processes at before_fit
    claims = ('backward',)
    # Class defaults: a subclass with its own __init__ or before_fit runs without state it never set.
    acc: Any = None  # an accelerate.Accelerator once a fit starts (the original's name for it)
    mixed_precision: str = 'no'
    timeout: float | None = DEFAULT_TIMEOUT
    accelerator_kwargs: Mapping[str, Any] = MappingProxyType({})
    vote: StopVote | None = None  # the processes' vote, made at the first multi-process fit
    _launch: bool | None = None  # this fit's launch vote: None before before_fit, False until cast, True once cast
    _installed = False

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

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # The original's subclasses (its DreamBooth tutorial) work on the batch after DeviceCB and the transforms.
        super().__init_subclass__(**kwargs)
        if 'before_batch' in vars(cls) and 'order' not in vars(cls): cls.order = Order.DEFAULT

    @property
    def yields(self) -> tuple[str, ...]:  # type: ignore[override]
        """The step phases inherited unchanged from BasicTrainCB: done here only when no other callback does them."""
        return tuple(p for p in PLAIN_PHASES if getattr(type(self), p) is getattr(BasicTrainCB, p))

    def before_fit(self, trainer):
        '''Installs the processes of the launch as `trainer.processes`, which prepare model, optimizers and loaders'''
        self._launch = False
        if self._does('predict', trainer): super().before_fit(trainer)  # the step's own start (n_inp, first checks)
        acc = self.acc = self.acc or self._make_accelerator()
        several = acc.num_processes > 1
        if several and self.vote is None: self.vote = StopVote(vote_group())
        if several: set_timeout(self.timeout, self.vote.group if self.vote else None, self.accelerator_kwargs)
        check_launch(trainer, acc)
        self._launch = self._installed = True
        processes = AcceleratedProcesses(acc, self.vote if several else None, trainer)
        trainer.use_processes(processes)
        processes.prepare(trainer)  # the launch vote first

    def _does(self, phase: str, trainer) -> bool:
        """Whether this callback does `phase` in this fit (it yields its inherited ones to another step callback)."""
        if phase not in self.yields: return True
        return not any(cb is not self and phase not in getattr(cb, 'observes', ()) and event_methods(cb, phase)
                       for cb in trainer.cbs)

    def _make_accelerator(self):
        return make_accelerator(self.mixed_precision, self.accelerator_kwargs)

    def backward(self, trainer):
        '''Using accelerate for backward pass'''
        if self._installed: trainer.processes.backward(trainer.loss)
        else:  # a subclass that prepared what it wanted itself
            if self.acc is None: self.acc = self._make_accelerator()
            self.acc.backward(trainer.loss)

    def cleanup_fit(self, trainer):
        '''Restores model, optimizers and loaders; one process again'''
        launch, self._launch = self._launch, None
        if self._installed:
            self._installed = False
            trainer.processes.restore(trainer)
            trainer.use_processes(None)
        elif launch is False or (launch is None and type(self).before_fit is AccelerateCB.before_fit):
            self._cast_launch_vote(trainer.exception)

    def _cast_launch_vote(self, e: BaseException | None) -> None:
        # This process failed in before_fit before the launch vote (a callback ordered before this one, or the launch
        # check): the others wait in that vote, so cast this process's stop there.
        code = stop_code(e, FIT) if e is not None else FIT  # none: a CancelFitException, already caught
        if self.acc is None:
            if launched_processes() < 2: return
            try: self.acc = self._make_accelerator()
            except Exception: return  # the other processes cannot have made one either
        if self.acc.num_processes < 2: return
        if self.vote is None: self.vote = StopVote(vote_group())
        self.vote(code, f"{type(e).__name__}: {e}" if code == ERROR and e is not None else "")

    def __repr__(self) -> str: return f"{type(self).__name__}(mixed_precision={self.mixed_precision!r})"
