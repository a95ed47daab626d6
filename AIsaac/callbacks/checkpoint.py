"""`CheckpointCB`: saves what a fit needs to continue exactly, every few batches, every epoch and on the way out."""
from __future__ import annotations

import contextlib
import os
import warnings
from pathlib import Path

from ..callback import Callback, Order
from ..exceptions import CancelBatchException, CancelEpochException
from ..runtime.args import whole_number
from ..runtime.checkpoint_file import (check_writable, checkpoint_files, checkpoint_name, non_finite,
                                       remove_stale_temp_files, save_checkpoint)
from ..runtime.distributed import is_sharded
from ..runtime.model_state import trainer_state, unwrap_model
from ..runtime.rng import get_rng_state, loads_ahead
from ..runtime.sharded_checkpoint import ShardedWriter


class CheckpointCB(Callback):
    '''Writes checkpoints into the folder `path`; `trainer.fit(..., resume_from=path)` continues from the newest

    A checkpoint holds the model, the optimizer, every callback with `state_dict`/`load_state_dict` (schedulers,
    gradient scalers...), the RNG states and the position (epoch, batch, and what replays the epoch's shuffle);
    see AIsaac.runtime.checkpoint_file. It is written every `every_n_batches` training batches (None: never), after
    each epoch when `every_epoch`, and when a phase or the fit stops early (KeyboardInterrupt, an error, a cancel)
    anywhere but in the middle of a training step (`trainer.in_step`; a stop in another callback's after_batch keeps
    that batch), at the cleanup of that phase. Only the `keep` newest files of this run are kept (None:
    all); other runs' files in the folder are never touched. Files are named checkpoint-e<epoch>-b<batch>-<run id>.pt,
    meaning <batch> batches of epoch <epoch> are done. A checkpoint whose weights hold NaN or infinity is not written
    (a warning says so).
    The epoch's checkpoint is written at its last phase's cleanup_epoch, once the metrics, loggers and monitors have
    recorded the epoch, so that their state in it includes it. Takes no part in side runs (`lr_find`...).

    With several processes (AccelerateCB) only the main process writes; every process gives its RNG states to the
    file (through `trainer.gather_object`), so a resume on as many processes continues exactly. Saves happen in
    cleanup events (cleanup_batch, cleanup_epoch), which every process reaches. The save on the way out of a stopped
    fit is then left out (the others may have stopped where they cannot give their states): the last periodic
    checkpoint is what resumes; but a preemption signal (SIGTERM) to any process stops them all after the same batch
    (AccelerateCB's vote), and that checkpoint is written. Every process must see the folder to resume from it.

    A model sharded with `fully_shard` (FSDP2) is saved as a folder (checkpoint-e<epoch>-b<batch>-<run id>/) that every
    process writes its shards into, in the background, with nothing gathered whole (AIsaac.runtime.sharded_checkpoint).
    '''

    order = Order.LAST  # after the other callbacks' after_batch and cleanup_epoch: schedulers and loggers are done
    side_runs = False

    def __init__(self, path: str | os.PathLike, every_n_batches: int | None = None, every_epoch: bool = True,
                 keep: int | None = 2):
        every_n_batches = whole_number("every_n_batches", every_n_batches, owner="CheckpointCB",
                                       what="batches between saves", none="no saves within an epoch")
        keep = whole_number("keep", keep, owner="CheckpointCB", what="how many checkpoints to keep", none="keep all")
        self.path, self.every_n_batches, self.every_epoch, self.keep = Path(path), every_n_batches, every_epoch, keep
        self.last_saved: Path | None = None
        # Also set by before_fit; here for a fit whose before_fit failed before reaching this callback.
        self._main, self._finished = True, False
        self._pos: tuple[int, int, dict | None] | None = None  # (epoch, batch, loader_rng) the fit could continue from
        self._saved_pos: tuple[int, int] | None = None
        self._ahead = False
        self._prev_rng: dict | None = None
        self._last_rng: dict | None = None
        self._sharded_writer = ShardedWriter()  # a sharded model's checkpoints (runtime.sharded_checkpoint)

    def before_fit(self, trainer):
        self._main = trainer.is_main_process
        if self._main:  # a folder that cannot be written fails now, not after the first epoch
            check_writable(self.path, "CheckpointCB")
            remove_stale_temp_files(self.path, trainer.run_id)  # this run's own, whose writer is gone
        # _pos: where the fit could continue from now (the last finished step's batch, trainer.trained_to).
        self._pos, self._saved_pos, self._finished = None, None, False

    def before_epoch(self, trainer):
        # A loader that loads a batch ahead loads batch k+1 right after batch k-1's cleanup: the RNG state there is
        # kept (a copy per batch, only for such loaders) so that a resume loads that batch as it was.
        # (Also without every_n_batches: the checkpoint on the way out of a preempted fit needs it too.)
        self._ahead = trainer.training and loads_ahead(trainer.dl)
        self._prev_rng = self._last_rng = None

    # Saves happen in cleanup events, by position alone: every process gets there (also one whose after_batch a
    # CancelBatchException cut short), so all of them take part in the save's exchange of RNG states.
    def cleanup_batch(self, trainer):
        if not trainer.training: return
        if self._ahead: self._prev_rng, self._last_rng = self._last_rng, get_rng_state()
        # This batch's step finished (whatever stopped the batch afterwards): the fit could continue after it.
        if trainer.trained_to == trainer.batch_num + 1 and not trainer.in_step:
            self._pos = (trainer.epoch, trainer.trained_to, trainer.loader_rng)
        n = self.every_n_batches
        # (a batch cancelled on one process is still a batch of the fit: every process takes part in the save)
        if n and (trainer.batch_num + 1) % n == 0 and isinstance(trainer.exception, (type(None), CancelBatchException)):
            self._save(trainer, (trainer.epoch, trainer.batch_num + 1))

    def cleanup_epoch(self, trainer):
        # A phase cut short (an error, an interrupt, a cancel): keep the progress now, before cleanup_fit, where
        # SaveBestCB puts the best weights back into the model.
        if not trainer.phase_complete: return self._save_on_the_way_out(trainer)
        if not trainer.last_phase: return  # the record ends after its validation phase
        # A record's last phase, after the metrics, loggers and monitors have recorded it (Order.LAST). The fit goes on
        # at the next epoch, or, after a validation in the middle of an epoch (valid_every), at the training batch
        # that validation followed.
        if trainer.epoch_done or not trainer.run_train or self._pos is None: self._pos = (trainer.epoch + 1, 0, None)
        if self.every_epoch and isinstance(trainer.exception, (type(None), CancelEpochException)):
            self._save(trainer, self._pos[:2])

    def after_fit(self, trainer): self._finished = True

    def cleanup_fit(self, trainer):
        self._save_on_the_way_out(trainer)
        self._sharded_writer.wait()  # the write in flight ends with the fit (also on an error or a preemption)
        self._pos = None  # nothing of this fit is saved by a later one that fails before its before_fit

    def _save_on_the_way_out(self, trainer) -> None:
        # The fit stopped early: keep its progress, unless a training step was cut off halfway (its weights are
        # then neither before nor after that step). The RNG states are those of the moment it stopped.
        # With several processes only after a preemption, where they all stop at the same point (see the docstring).
        if trainer.num_processes > 1 and trainer.preempted is None: return
        if not self._finished and not trainer.in_step and self._pos is not None and self._pos[:2] != self._saved_pos:
            self._save(trainer, self._pos[:2])

    def _save(self, trainer, at: tuple[int, int]) -> None:
        fetch_rng = self._prev_rng if self._ahead and at[1] >= 2 else None  # batch `at` loaded after at-2's cleanup
        processes = trainer.gather_object({"rng": get_rng_state(), "loader_rng": trainer.loader_rng,
                                           "fetch_rng": fetch_rng})
        if processes is None: return  # another process stopped the fit
        epoch, batch = at
        pos = self._pos if self._pos is not None and self._pos[:2] == at else None
        if is_sharded(unwrap_model(trainer.model)):  # every process writes its own shards, in the background
            saved = self._sharded_writer.save(trainer, self.path, at, pos[2] if pos else trainer.loader_rng, processes,
                                              fetch_rng, not trainer.in_step and pos is not None, self.keep)
            if saved is not None: self.last_saved, self._saved_pos = saved, at
            return
        state = trainer_state(trainer, epoch, batch, pos[2] if pos else trainer.loader_rng,
                              processes, fetch_rng)  # collectives for a sharded model: every process builds it
        # Written only where this process's last finished step is `at` (a batch cancelled before its end is not).
        if not (self._main and not trainer.in_step and pos): return
        if bad := non_finite(state):  # a diverged model would become the newest checkpoint and be resumed from
            warnings.warn(f"CheckpointCB: not saving epoch {epoch}, batch {batch}: the weights hold NaN or infinity "
                          f"({', '.join(bad[:3])}); the last checkpoint written stays the newest.", RuntimeWarning)
            return
        run_id = trainer.run_id
        self.last_saved = save_checkpoint(state, self.path / checkpoint_name(epoch, batch, run_id))
        self._saved_pos = at
        if self.keep is not None:
            for old in checkpoint_files(self.path, run_id)[:-self.keep]:
                if old == self.last_saved: continue  # file times can tie; never drop the one just written
                with contextlib.suppress(FileNotFoundError): old.unlink()
