"""The trainer's distributed state, and how processes agree to stop together.

Trainer state for callbacks (one-process defaults in `OneProcess`, which `Trainer` inherits; AccelerateCB sets them per
fit):
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

How processes agree (AccelerateCB): every process casts one vote at the same points of the loop (the end of each
`before_epoch`, each batch before its collective, the end of each epoch phase and of the fit, and before preparing
the model); a process cut short casts its stop at its next cleanup instead, which meets the others' next vote. So an
error or a cancel on any process, at any event, ends every process after a bounded number of steps, with no
collective left waiting. One exception is local by nature: an error in a `cleanup_fit` after AccelerateCB's own
(the fit's last vote) ends only the process that raised it, the others having finished.
"""
from __future__ import annotations

import contextlib
import os
import re
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


class OneProcess:
    """The distributed state's one-process defaults, as `Trainer` inherits them (AccelerateCB sets them per fit)."""

    is_main_process: bool = True
    num_processes: int = 1
    process_index: int = 0

    @staticmethod
    def reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
        """`tensor` summed over the processes (a collective under AccelerateCB); with one process, `tensor` itself."""
        return tensor

    @staticmethod
    def gather_object(obj: Any) -> list[Any] | None:
        """Every process's `obj`, by process index (a voting collective under AccelerateCB); with one process, `[obj]`."""
        return [obj]


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
        with collective("AccelerateCB's stop vote"):
            dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=self.group)
            agreed, self.preempted = int(flag[0]), int(flag[1])
            if agreed == ERROR:
                self.messages = [""] * dist.get_world_size(self.group)
                dist.all_gather_object(self.messages, message, group=self.group)
        return agreed

