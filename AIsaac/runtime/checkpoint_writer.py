"""`CheckpointWriter`: CheckpointCB's writes, in a background thread by default. The loop blocks only while the state
is copied to host memory (`host_copy`); the checksum, serializing, fsync, the atomic rename and pruning old files
happen in the thread, one write at a time. A failed write is raised, with its class, at the writer's next use
(`raise_failed`, `submit`, `wait`): never lost. Memory: one host copy of the checkpoint while it is written."""
from __future__ import annotations

import copy
import threading
from typing import Any, Callable

import torch


def host_copy(obj: Any) -> Any:
    """`obj` with every tensor copied to host memory and every container copied, so that training on (the model's
    weights, the optimizer's moments, a callback's lists) cannot change what is being written. Accelerator tensors go
    through pinned memory, one synchronization for all of them."""
    synced: list[bool] = []

    def copy_(x: Any) -> Any:
        if isinstance(x, torch.Tensor):
            if x.device.type == "cpu": return x.detach().clone()
            pinned = torch.cuda.is_available() and x.device.type == "cuda"
            out = torch.empty(x.shape, dtype=x.dtype, device="cpu", pin_memory=pinned)
            out.copy_(x.detach(), non_blocking=pinned)
            if pinned: synced.append(True)
            return out
        if isinstance(x, dict): return type(x)((k, copy_(v)) for k, v in x.items()) if type(x) is not dict \
            else {k: copy_(v) for k, v in x.items()}
        if isinstance(x, list): return [copy_(v) for v in x]
        if isinstance(x, tuple) and not hasattr(x, "_fields"): return tuple(copy_(v) for v in x)
        if isinstance(x, (str, bytes, int, float, bool, type(None))): return x
        return copy.deepcopy(x)

    out = copy_(obj)
    if synced: torch.cuda.synchronize()  # the non-blocking copies have landed before the thread reads them
    return out


class CheckpointWriter:
    """Runs `finish(state)` (which writes a checkpoint) on a host copy of `state` in a background thread, at most one
    at a time; `background=False` runs it in the caller, as it is."""

    def __init__(self, background: bool = True):
        self.background = background
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def submit(self, state: dict[str, Any], finish: Callable[[dict[str, Any]], Any]) -> None:
        """Write: wait for the write in flight (raising its failure), then start this one."""
        self.wait()
        if not self.background:
            finish(state)
            return
        snapshot = host_copy(state)
        # Not a daemon: a process that ends normally finishes its write first (the file appears whole or not at all).
        self._thread = threading.Thread(target=self._run, args=(finish, snapshot), name="AIsaac checkpoint writer")
        self._thread.start()

    def _run(self, finish: Callable[[dict[str, Any]], Any], state: dict[str, Any]) -> None:
        try: finish(state)
        except BaseException as e: self._error = e

    @property
    def busy(self) -> bool:
        """Whether a write is in flight."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def failed(self) -> bool:
        """Whether a finished write failed (its error not raised yet)."""
        return self._error is not None

    def wait(self) -> None:
        """Wait for the write in flight; raise its failure, if any."""
        thread, self._thread = self._thread, None
        if thread is not None: thread.join()
        self.raise_failed()

    def raise_failed(self) -> None:
        """Raise the failure of a finished write (once)."""
        error, self._error = self._error, None
        if error is not None: raise error
