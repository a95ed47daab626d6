"""Preemption: SIGTERM (or another chosen signal) during a fit stops it after the current optimizer step, on the way
out of which CheckpointCB writes a checkpoint; then `fit` raises `Preempted`, a `SystemExit` whose exit code
(`REQUEUE_EXIT_CODE`, 75: EX_TEMPFAIL, "try again") a job script can requeue on (see examples/slurm_train.sh)."""
from __future__ import annotations

import contextlib
import signal
import threading
import warnings
from typing import Any, Iterator

REQUEUE_EXIT_CODE = 75


class Preempted(SystemExit):
    """The fit was stopped by a preemption signal after a finished step (its checkpoint written where CheckpointCB
    is); the process exits with `REQUEUE_EXIT_CODE` unless this is caught."""

    def __init__(self, signum: int, step: int, checkpoint_dir: Any = None):
        super().__init__(REQUEUE_EXIT_CODE)
        self.signum, self.step, self.checkpoint_dir = signum, step, checkpoint_dir

    def __str__(self) -> str:
        said = f"Preempted by {signal.Signals(self.signum).name} after optimizer step {self.step}; exit code " \
               f"{REQUEUE_EXIT_CODE}"
        if self.checkpoint_dir is None:
            return (f"{said}. Nothing was saved: this fit has no CheckpointCB, so a requeued job starts over. Add "
                    f"CheckpointCB('ckpt') to the fit's callbacks and fit(..., resume_from='ckpt') to continue instead.")
        return f"{said} (requeue, then fit(..., resume_from={str(self.checkpoint_dir)!r}))."


@contextlib.contextmanager
def catching_preemption(trainer: Any, signals: tuple[int, ...]) -> Iterator[None]:
    """While the block runs, each of `signals` sets `trainer.preempted` to the signal's number instead of killing
    the process (the trainer stops after the current batch); once the block ended, raises `Preempted` when one came,
    with a warning saying so. Only the main thread can install handlers; elsewhere
    (a notebook's worker thread) the signals keep their usual effect."""
    trainer.preempted = None
    if not signals or threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        trainer.preempted = signum

    previous = {s: signal.signal(s, handler) for s in signals}
    try: yield
    finally:
        for s, h in previous.items(): signal.signal(s, h)
    if trainer.preempted is not None:
        stop = Preempted(trainer.preempted, trainer.step, trainer.checkpoint_dir)
        warnings.warn(str(stop), RuntimeWarning, stacklevel=4)  # said where a job's log shows it
        raise stop
