"""AccelerateCB's launch: how many processes the launcher started, making the `accelerate.Accelerator`, checking the
launch against it, and the process group the stop votes travel on."""
from __future__ import annotations

import numbers
import os
from datetime import timedelta
from typing import Any, Mapping

import torch.distributed as dist

from ..runtime.placement import def_device
from .device import DeviceCB


def launched_processes() -> int:
    """How many processes the launcher (`accelerate launch`, `torchrun`) started: its WORLD_SIZE, else 1."""
    return int(os.environ.get("WORLD_SIZE", 1))


def make_accelerator(mixed_precision: str, accelerator_kwargs: Mapping[str, Any]) -> Any:
    """An `accelerate.Accelerator(mixed_precision, **accelerator_kwargs)`, on the CPU for a multi-process launch
    without GPUs; fp16 on a CPU and a missing Accelerate are clear errors."""
    try: from accelerate import Accelerator, PartialState
    except ImportError as e:
        raise ImportError("AccelerateCB needs Hugging Face Accelerate: pip install 'aisaac[distributed]' "
                          "(or pip install accelerate).") from e
    kwargs = dict(accelerator_kwargs)
    if launched_processes() > 1 and def_device.type == 'cpu':
        # Accelerate runs each process of a multi-process launch alone when it finds no GPU, unless told cpu=True.
        kwargs.setdefault('cpu', True)
    # The process's device, known before the Accelerator fixes its settings for the whole process.
    dev = PartialState(cpu=kwargs.get('cpu', False)).device
    if mixed_precision == 'fp16' and dev.type == 'cpu':
        raise RuntimeError("mixed_precision='fp16' needs a GPU but this process runs on the CPU; use 'bf16' "
                           "(or 'no') here, or launch on GPUs.")
    return Accelerator(mixed_precision=mixed_precision, **kwargs)


def check_launch(trainer: Any, acc: Any) -> None:
    """Raise when the launch and the Accelerator disagree on the number of processes, or a DeviceCB on the trainer
    wants another device than the one this process runs on."""
    dev, launched = acc.device, launched_processes()
    if launched > 1 and launched != acc.num_processes:  # (MPI and SLURM launches may not set WORLD_SIZE)
        raise RuntimeError(f"The launcher started {launched} processes but Accelerate runs {acc.num_processes} on "
                           f"{dev} ({acc.distributed_type}); each would train alone. Launch with `accelerate "
                           f"launch` (its config says how processes find each other), or check WORLD_SIZE.")
    for cb in trainer.cbs:
        if not isinstance(cb, DeviceCB): continue
        want = cb.device
        if want.type != dev.type or (want.index is not None and dev.index is not None and want.index != dev.index):
            raise RuntimeError(f"DeviceCB puts the model and batches on {want} but this process of the launch runs "
                               f"on {dev} (AccelerateCB places them); remove DeviceCB, or make it DeviceCB("
                               f"'{dev.type}'), or launch so that the processes get {want.type} devices.")


def vote_group() -> Any:
    """The process group stop votes travel on, as CPU tensors: the default group when it is gloo (None), else a gloo
    group made for them (call it once per run, on every process)."""
    if dist.get_backend() == 'gloo': return None
    return dist.new_group(backend='gloo')


DEFAULT_TIMEOUT = 600.0  # seconds; NCCL's own default, where torch gives gloo 30 minutes


def check_timeout(timeout: Any) -> float | None:
    """AccelerateCB's `timeout` (seconds, > 0, or None), else a ValueError saying what it is."""
    if timeout is None or (isinstance(timeout, numbers.Real) and not isinstance(timeout, bool) and float(timeout) > 0):
        return None if timeout is None else float(timeout)
    raise ValueError(f"AccelerateCB: timeout must be a number of seconds > 0 (how long a process waits for the others "
                     f"at a collective before it stops, naming them), or None (the process group's own); got "
                     f"{timeout!r}.")


def set_timeout(seconds: float | None, vote: Any, accelerator_kwargs: Mapping[str, Any]) -> None:
    """Make every collective of this fit (the default process group's, and the stop votes' group `vote`) fail after
    `seconds` without an answer, whoever made the groups; an `InitProcessGroupKwargs(timeout=...)` among the
    Accelerator's `kwargs_handlers` wins; None leaves the groups' own (torch's: 10 minutes for NCCL, 30 for gloo)."""
    timeout = None if seconds is None else timedelta(seconds=seconds)
    for handler in accelerator_kwargs.get("kwargs_handlers") or ():
        if type(handler).__name__ == "InitProcessGroupKwargs" and handler.timeout is not None: timeout = handler.timeout
    # (older torch has only the private one; one without either keeps the groups' own)
    setter = getattr(dist, "set_timeout", None) or getattr(dist.distributed_c10d, "_set_pg_timeout", None)
    if timeout is None or setter is None: return
    for group in {None, vote}: setter(timeout, group)
