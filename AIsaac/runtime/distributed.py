"""`trainer.processes`: the processes a fit runs on, and how they agree. It owns everything that coordinates several
processes, so "how does a fit end when 4 processes disagree" has one answer, here (`AcceleratedProcesses.end_scope`).

`Processes` is one process, every trainer's default: nothing is prepared, collectives are the identity. AccelerateCB
installs an `AcceleratedProcesses` for its fit (`trainer.use_processes`) and uninstalls it at cleanup_fit.

Trainer state for callbacks (set from `trainer.processes` when it is installed):
  is_main_process: True on the one process that prints and writes files (logs, plots, checkpoints); True when
    not distributed. Other processes stay quiet.
  num_processes: how many processes train together (1 when not distributed).
  process_index: this process's place among them, 0 to num_processes - 1 (0 when not distributed).
  reduce_sum(tensor): `tensor` summed over the processes (itself when not distributed). It is a collective:
    every process must call it at the same point of the fit.
  gather_object(obj): the list of every process's `obj`, by process index (`[obj]` when not distributed), or None
    when another process has stopped the fit (the stop is then raised at the end of the current cleanup event). It
    is a collective that first votes, so a process that stopped elsewhere cannot leave the others waiting: call it
    from a cleanup event (`cleanup_batch`, `cleanup_epoch`), where every process arrives unless one has stopped.

How processes agree: every process casts one vote at the same points of the loop: before preparing the model (the
launch), at the start of each phase (before the loader's first batch), once per batch before its collective (the
backward's gradient all-reduce, the gather of a validation batch; also before the forward when it holds one), and at
the end of each batch that did not vote, each phase and the fit, where the kernel hands `trainer.exception` over
(`end_scope`). A process cut short casts its stop at its next scope end instead, which meets the others' next vote.
The highest stop code wins (OK < BATCH < EPOCH < FIT < ERROR), so an error or a cancel on any process, at any event,
ends every process after the same optimizer step, with no collective left waiting. A preemption signal travels with
the votes: every process stops after the batch in which one of them learned of it. One exception is local by
nature: an error in a `cleanup_fit` after the fit's last vote ends only the process that raised it.
"""
from __future__ import annotations

import contextlib
import copy
import os
import re
import weakref
from collections.abc import Callable, Iterator
from typing import Any, TypeGuard

import torch
import torch.distributed as dist

from ..exceptions import CancelBatchException, CancelEpochException, CancelFitException

# Stop codes, by severity: processes agree on the highest one raised anywhere.
OK, BATCH, EPOCH, FIT, ERROR = range(5)
_CANCEL_CODES: dict[type[BaseException], int] = {CancelBatchException: BATCH, CancelEpochException: EPOCH,
                                                 CancelFitException: FIT}
_CANCELS = {BATCH: CancelBatchException, EPOCH: CancelEpochException, FIT: CancelFitException}
# Per cleanup event: the level of its scope, and the least agreed stop raised there when more severe than this
# process's own (a cancel agreed for the batch is over once the batch is).
_SCOPES = {"cleanup_batch": (BATCH, EPOCH), "cleanup_epoch": (EPOCH, FIT), "cleanup_fit": (FIT, ERROR)}


class Processes:
    """One process: the default `trainer.processes`. Nothing to prepare, agree on or gather."""

    several = False  # whether the kernel calls the agreement hooks below (`begin_phase`, `before_forward`, ...)
    is_main_process, num_processes, process_index = True, 1, 0
    preempt_agreed = True  # a preemption signal needs no agreement: the fit stops after the current step

    def prepare(self, trainer: Any) -> None:
        """Make the trainer's model, optimizers and loaders this run's (nothing to do with one process)."""

    def restore(self, trainer: Any) -> None:
        """Put back what `prepare` replaced."""

    def backward(self, loss: torch.Tensor) -> None:
        """Backpropagate `loss` (with several processes, gradients are averaged over them)."""
        loss.backward()

    def reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """`tensor` summed over the processes: `tensor` itself."""
        return tensor

    def gather_object(self, obj: Any) -> list[Any] | None:
        """Every process's `obj`, by process index: `[obj]`."""
        return [obj]

    # The agreement hooks; the kernel calls them only when `several`.
    def begin_phase(self) -> None: """Vote before the phase's first batch."""
    def before_forward(self) -> None: """Vote before a forward that holds a collective."""
    def gather_batch(self, trainer: Any) -> None: """Gather a validation batch's predictions from every process."""

    def end_scope(self, cleanup: str, exception: BaseException | None) -> None:
        """Agree on how a scope ended (`exception`: what ended it, None: normally), before its cleanup event runs."""

    def take_stop(self) -> BaseException | None:
        """After a cleanup event: the stop the processes agreed on, more severe than this one's (raised then), or None."""
        return None


def is_sharded(model: torch.nn.Module) -> bool:
    """Whether `model` was sharded with PyTorch's `fully_shard` (FSDP2): its state is then gathered and scattered
    by collectives (see AIsaac.runtime.model_state), and AccelerateCB does not wrap it in DDP."""
    try: from torch.distributed.fsdp import FSDPModule
    except ImportError: return False
    return isinstance(model, FSDPModule)


class ProcessStopError(RuntimeError):
    """Another process of a distributed fit failed, so this one stops too; the message carries that error."""


class ProcessLostError(ProcessStopError):
    """A collective failed: another process stopped answering (its machine or process died, or hangs); the message
    says which this process was waiting for. Once raised, this process makes no more collectives in the fit."""


# How gloo reports a peer gone (a closed connection, a timeout), raised by torch as a RuntimeError; NCCL's errors are
# DistBackendErrors. Narrow on purpose: a user's error taken for one would skip this process's vote.
_COMM = re.compile(r"gloo/transport/|Connection (reset|closed) by peer")


def is_comm_failure(e: BaseException | None) -> TypeGuard[BaseException]:
    """Whether `e` is a collective's failure (torch's DistError, or a RuntimeError from gloo's transport)."""
    dist_error = getattr(dist, "DistError", ())
    return isinstance(e, dist_error) or (isinstance(e, RuntimeError) and bool(_COMM.search(str(e))))


def lost_error(e: BaseException, what: str) -> ProcessLostError:
    """The error that says a collective of all processes (`what`) failed with `e`, naming this process and those it
    waited for (with two, the other one)."""
    rank, world = dist.get_rank(), dist.get_world_size()
    others = [r for r in range(world) if r != rank]
    waited = f"process {others[0]} of {world}{_node(others[0], ' (', ')')}" if len(others) == 1 else \
        f"one of processes {', '.join(map(str, others))} of {world}"
    timeout = "did not answer" if "timed out" in str(e).lower() else "broke the connection"
    return ProcessLostError(f"Lost {waited}: it {timeout} while process {rank} (this one{_node(rank, ', ')}) waited "
                            f"for it in {what} (it died, was killed, or hangs; see its own log). This process stops "
                            f"too. {type(e).__name__}: {str(e).strip()}")


def _node(rank: int, before: str = "", after: str = "") -> str:
    """'node N' (between `before` and `after`) where the launch says: torchrun's, with as many processes on each node
    (it numbers the ranks node by node); else ''."""
    try: nodes, per_node = int(os.environ["GROUP_WORLD_SIZE"]), int(os.environ["LOCAL_WORLD_SIZE"])
    except (KeyError, ValueError): return ""
    return f"{before}node {rank // per_node}{after}" if nodes > 1 and nodes * per_node == dist.get_world_size() else ""


@contextlib.contextmanager
def collective(what: str, on_lost: Callable[[], Any] | None = None) -> Iterator[None]:
    """Turn the failure of the collective of all processes inside into a ProcessLostError naming those waited for;
    `on_lost` is called first (also for a ProcessLostError from inside)."""
    try: yield
    except Exception as e:
        lost = isinstance(e, ProcessLostError)
        if not (lost or is_comm_failure(e) and not isinstance(e, ProcessStopError)): raise
        if on_lost is not None: on_lost()
        if lost: raise
        raise lost_error(e, what) from e


def stop_code(e: BaseException | None, level: int = BATCH) -> int:
    """The stop code of exception `e` seen at a `level` (BATCH, EPOCH or FIT) of the loop.

    A cancel exception meant for a level already left (a CancelBatchException escaping its batch) cannot be caught
    there any more, so it ends the fit as an error does.
    """
    if e is None: return OK
    code = _CANCEL_CODES.get(type(e), ERROR)
    return code if code >= level else ERROR


def stop_exception(code: int, messages: list[str] | None = None) -> BaseException:
    """The exception that makes this process take the agreed stop `code`."""
    if code in _CANCELS: return _CANCELS[code]()
    failed = "; ".join(f"process {i} failed: {m}" for i, m in enumerate(messages or []) if m)
    return ProcessStopError(failed or "another process failed")


class StopVote:
    """One collective vote per call: every process gives its stop code and gets the highest one.

    With `ERROR`, the processes also exchange their error messages (kept in `messages`, indexed by process), so each
    can say what went wrong elsewhere. `group` is a torch.distributed group of CPU tensors (gloo), so a vote never
    waits for a GPU.
    """

    def __init__(self, group=None):
        self.group, self.messages, self.preempted = group, [], 0

    def __call__(self, code: int, message: str = "", preempted: int = 0) -> int:
        """Vote `code`; `preempted`: the preemption signal this process received (0: none). After the vote,
        `preempted` holds the highest signal any process received, so all of them stop after the same step."""
        flag = torch.tensor([code, preempted], dtype=torch.int32)
        with collective("the processes' stop vote"):
            dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=self.group)
            agreed, self.preempted = int(flag[0]), int(flag[1])
            if agreed == ERROR:
                self.messages = [""] * dist.get_world_size(self.group)
                dist.all_gather_object(self.messages, message, group=self.group)
        return agreed


class AcceleratedProcesses(Processes):
    """`trainer.processes` under AccelerateCB: `acc` (an `accelerate.Accelerator`) prepares the model, optimizers and
    loaders and does the backward; with several processes they vote through `vote` (a StopVote), see the module."""

    def __init__(self, acc: Any, vote: StopVote | None, trainer: Any):
        self.acc, self.vote = acc, vote
        self.several = acc.num_processes > 1 and vote is not None
        self.is_main_process, self.num_processes = acc.is_main_process, acc.num_processes
        self.process_index = acc.process_index
        self._trainer = weakref.ref(trainer)  # its `preempted` goes into every vote
        # A stop agreed for the fit (its code), or for this phase; whether this batch voted; the forward's vote.
        self.fit_stop, self.phase_stop, self.voted, self.votes_forward = OK, False, False, False
        self.preempt_agreed = not self.several
        self.pending: BaseException | None = None  # a stop agreed elsewhere, raised at the end of the cleanup event
        self._originals: tuple | None = None

    # ---- the fit ----
    def prepare(self, trainer: Any) -> None:
        """The launch vote (before prepare's collectives: DDP broadcasts the weights), then the model, optimizers and
        loaders prepared by Accelerate; a model already sharded by `fully_shard` is left as it is."""
        if self.several and (agreed := self._vote(OK)): raise stop_exception(agreed, self.vote_messages)
        self._originals = trainer.model, trainer.opt, trainer.opts, trainer.dls
        dls = copy.copy(trainer.dls)  # the user's DataLoaders keeps its own loaders
        loaders = [n for n in ("train", "valid") if getattr(dls, n, None) is not None]
        names = list(trainer.opts)
        rest = (*trainer.opts.values(), *(getattr(dls, n) for n in loaders))
        if is_sharded(trainer.model): model, prepared = trainer.model, list(self.acc.prepare(*rest))
        else: model, *prepared = self.acc.prepare(trainer.model, *rest)
        opts = dict(zip(names, prepared[:len(names)]))
        for n, dl in zip(loaders, prepared[len(names):]): setattr(dls, n, dl)
        trainer.model, trainer.opts, trainer.dls = model, opts, dls
        trainer.opt = opts[names[0]] if len(names) == 1 else None
        # A sharded model gathers its parameters in the forward, and DDP broadcasts buffers (BatchNorm statistics)
        # there: then a vote precedes the forward too.
        self.votes_forward = self.several and (is_sharded(model) or (
            bool(getattr(model, "broadcast_buffers", False)) and any(True for _ in model.buffers())))

    def restore(self, trainer: Any) -> None:
        """The model (its trained weights), optimizers and loaders the fit was given, back on the trainer."""
        if self._originals is None: return
        self.acc.unwrap_model(trainer.model, keep_fp32_wrapper=False)  # takes autocast off model.forward
        trainer.model, trainer.opt, trainer.opts, trainer.dls = self._originals
        self._originals = None
        self.acc.free_memory()  # the accelerator forgets this fit's prepared objects

    # ---- collectives ----
    def backward(self, loss: torch.Tensor) -> None:
        self._vote_in_batch()
        with collective("the backward (its gradient all-reduce)", self._lose): self.acc.backward(loss)

    def reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        # After a stop agreed for the whole fit, the processes may be at different events: no collective then; and
        # a vote first, so that a process which stopped before getting here is not left waiting for.
        if not self.several or self.fit_stop or self.phase_stop or self._stopping(): return tensor
        with collective("trainer.reduce_sum", self._lose): return self.acc.reduce(tensor.to(self.acc.device), "sum")

    def gather_object(self, obj: Any) -> list[Any] | None:
        if not self.several: return [obj]
        # After an agreed preemption every process stops at the same point: their cleanups still meet.
        if not self.preempt_agreed and (self.fit_stop or self.phase_stop or self._stopping()):
            return None
        out = [None] * self.num_processes
        group = self.vote.group if self.vote is not None else None
        with collective("trainer.gather_object", self._lose): dist.all_gather_object(out, obj, group=group)
        return out

    def gather_batch(self, trainer: Any) -> None:
        """The validation batch of every process: predictions and targets gathered (the sampler's padding dropped),
        the loss recomputed on them with `trainer.loss_func` (with none, the processes' losses averaged)."""
        self._vote_in_batch()
        with collective("gathering the validation batch", self._lose):
            preds, yb = self.acc.gather_for_metrics((trainer.preds, trainer.yb))
            trainer.preds, trainer.yb = preds, tuple(yb)
            if trainer.loss is None: return  # (get_preds computes no loss)
            if trainer.loss_func is not None and trainer.yb: trainer.loss = trainer.loss_func(preds, *trainer.yb)
            else:  # the model's own loss: the mean of the processes' (the last batch's padding counts, a slight bias)
                trainer.loss = self.acc.gather(trainer.loss.detach()[None]).mean()

    # ---- agreeing ----
    def begin_phase(self) -> None:
        # Before the loader's first batch (Accelerate's loaders broadcast RNG states there): a process that raised
        # in before_fit or before_epoch votes at its cleanup_fit or cleanup_epoch instead.
        if self.fit_stop: return
        if agreed := self._vote(OK): raise stop_exception(agreed, self.vote_messages)

    def before_forward(self) -> None:
        # Only when the forward holds a collective: a process cut short before it votes at its batch's end.
        if not self.votes_forward or self.fit_stop or self.phase_stop: return
        if agreed := self._vote(OK):
            self.voted = True  # the batch is over for every process: no vote at its end
            raise stop_exception(agreed, self.vote_messages)

    def _vote_in_batch(self) -> None:
        # Before this batch's collective: a process that raised earlier in the batch votes at its end instead, so
        # every process casts one vote per batch.
        if not self.several: return
        agreed = self._vote(OK)
        self.voted = True
        if agreed: raise stop_exception(agreed, self.vote_messages)

    def _stopping(self) -> bool:
        """Vote OK before a collective asked for by a callback: True when another process has stopped (the stop is
        raised at the end of the current cleanup event)."""
        agreed = self._vote(OK)
        if agreed and self.pending is None: self.pending = stop_exception(agreed, self.vote_messages)
        return agreed != OK

    def take_stop(self) -> BaseException | None:
        stop, self.pending = self.pending, None
        return stop

    def end_scope(self, cleanup: str, exception: BaseException | None) -> None:
        """THE place a multi-process stop is decided: this process's end of a scope (`exception`, the trainer's),
        voted with the others' (who vote at the same point, or in the loop if they went on); the agreed stop is kept
        for the kernel to raise after the cleanup event when it is more severe than this process's own."""
        stop = self._end(cleanup, exception)
        if stop is not None and self.pending is None: self.pending = stop

    def _end(self, cleanup: str, exception: BaseException | None) -> BaseException | None:
        level, raise_from = _SCOPES[cleanup]
        code = stop_code(exception, level)
        if level == BATCH:
            voted, self.voted = self.voted, False
            # A batch that voted already says nothing more unless it ends more than itself.
            if self.fit_stop or self.phase_stop or (voted and code < EPOCH): return None
            code = code or BATCH  # the batch is over (also when it ended normally without its vote)
        elif level == EPOCH:
            stopped, self.phase_stop = bool(self.fit_stop or self.phase_stop), False
            if stopped: return None
        elif self.fit_stop: return None
        if is_comm_failure(exception) and not isinstance(exception, ProcessStopError):  # a collective elsewhere failed
            self._lose()
            return lost_error(exception, "a collective")
        agreed = self._vote(code, f"{type(exception).__name__}: {exception}" if code == ERROR else "")
        if level == EPOCH: self.phase_stop = False  # the phase is over: its cleanups' collectives meet again
        if agreed > code and agreed >= raise_from: return stop_exception(agreed, self.vote_messages)
        return None

    def _vote(self, code: int, message: str = "") -> int:
        """Vote `code`; remember a stop agreed for the phase or the fit, and a preemption any process received."""
        trainer = self._trainer()
        assert self.vote is not None
        with collective("the processes' stop vote", self._lose):
            agreed = self.vote(code, message, (trainer.preempted or 0) if trainer is not None else 0)
        if self.vote.preempted and trainer is not None:
            # Every process now stops after the batch in progress (the kernel), at the same point, so the checkpoint
            # on the way out can be written.
            self.preempt_agreed, trainer.preempted = True, trainer.preempted or self.vote.preempted
        if agreed >= EPOCH: self.phase_stop = True
        if agreed >= FIT: self.fit_stop = agreed
        return agreed

    def _lose(self) -> None:  # no collective follows a lost process (each would wait for it again)
        self.fit_stop, self.phase_stop = ERROR, True

    @property
    def vote_messages(self) -> list[str]:
        return self.vote.messages if self.vote is not None else []
