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
from ..runtime.checkpoint_writer import CheckpointWriter
from ..runtime.checkpoint_file import checksum
from ..runtime.distributed import is_sharded
from ..runtime.model_state import trainer_state, unwrap_model
from ..runtime.rng import get_rng_state, loads_ahead
from ..runtime.sharded_checkpoint import ShardedWriter


class CheckpointCB(Callback):
    '''Writes checkpoints into the folder `path`; `trainer.fit(..., resume_from=path)` continues from the newest

    A checkpoint holds the model, the optimizer, every callback with `state_dict`/`load_state_dict` (schedulers,
    gradient scalers...), the RNG states and the position (epoch, batch, and what replays the epoch's shuffle);
    see AIsaac.runtime.checkpoint_file. It is written every `every_n_steps` optimizer steps (counted as `max_steps`
    and `valid_every` count them, so `GradAccumCB(4)` needs no `*4`), every `every_n_batches` training batches (None:
    never), after each epoch when `every_epoch`, and when a phase or the fit stops early (KeyboardInterrupt, an error, a cancel)
    anywhere but inside a training batch's step or its `after_batch` (`trainer.in_step`: the callbacks after the one
    that stopped would not have recorded the batch, so the resume would not be exact), at the cleanup of that phase. Only the `keep` newest files of this run are kept (None:
    all); other runs' files in the folder are never touched. Files are named checkpoint-e<epoch>-b<batch>-<run id>.pt,
    meaning <batch> batches of epoch <epoch> are done. A checkpoint whose weights hold NaN or infinity is not written
    (a warning says so).
    The epoch's checkpoint is written at its last phase's cleanup_epoch, once the metrics, loggers and monitors have
    recorded the epoch, so that their state in it includes it. Takes no part in side runs (`lr_find`...).

    `background=True` (the default): the loop waits only while the state is copied to host memory (one host copy of
    the checkpoint, the model's and optimizer's size); the checksum, writing, fsync, the atomic rename and pruning
    happen in a background thread (AIsaac.runtime.checkpoint_writer), one write at a time. The end of the fit, an
    error and a preemption wait for the write in flight; a write that failed is raised, with its class, at this
    callback's next training batch or phase end. `background=False` writes before the loop goes on.

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
                 keep: int | None = 2, every_n_steps: int | None = None, background: bool = True):
        every_n_batches = whole_number("every_n_batches", every_n_batches, owner="CheckpointCB",
                                       what="batches between saves", none="no saves within an epoch")
        every_n_steps = whole_number("every_n_steps", every_n_steps, owner="CheckpointCB",
                                     what="optimizer steps between saves", none="no saves counted in steps")
        keep = whole_number("keep", keep, owner="CheckpointCB", what="how many checkpoints to keep", none="keep all")
        self.path, self.every_n_batches, self.every_epoch, self.keep = Path(path), every_n_batches, every_epoch, keep
        self.every_n_steps, self.background = every_n_steps, bool(background)
        self.last_saved: Path | None = None  # the newest checkpoint written (complete on disk)
        self.writer = CheckpointWriter(self.background)
        self._step_saved = -1
        # Also set by before_fit; here for a fit whose before_fit failed before reaching this callback.
        self._main, self._finished = True, False
        self._pos: tuple[int, int, dict | None] | None = None  # (epoch, batch, loader_rng) the fit could continue from
        self._saved_pos: tuple[int, int] | None = None
        self._ahead = False
        self._phase_end_rng: dict | None = None
        self._prev_rng: dict | None = None
        self._last_rng: dict | None = None
        self._sharded_writer = ShardedWriter()  # a sharded model's checkpoints (runtime.sharded_checkpoint)

    def before_fit(self, trainer):
        self._main, trainer.checkpoint_dir = trainer.is_main_process, self.path
        if self._main:  # a folder that cannot be written fails now, not after the first epoch
            check_writable(self.path, "CheckpointCB")
            remove_stale_temp_files(self.path, trainer.run_id)  # this run's own, whose writer is gone
        # _pos: where the fit could continue from now (the last finished step's batch, trainer.trained_to).
        self._pos, self._saved_pos, self._finished, self._step_saved = None, None, False, -1
        self._phase_end_rng = None

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
        if self.writer.failed: self.writer.raise_failed()  # the last background write failed: say so now
        if self._ahead: self._prev_rng, self._last_rng = self._last_rng, get_rng_state()
        # This batch finished (its step and its after_batch, the trainer says): the fit could continue after it.
        if trainer.trained_to == trainer.batch_num + 1:
            self._pos = (trainer.epoch, trainer.trained_to, trainer.loader_rng)
        n = self.every_n_batches
        # (a batch cancelled on one process is still a batch of the fit: every process takes part in the save)
        if not isinstance(trainer.exception, (type(None), CancelBatchException)): return
        steps, step = self.every_n_steps, trainer.step
        if (n and (trainer.batch_num + 1) % n == 0) or (steps and step and step % steps == 0 and step != self._step_saved):
            self._step_saved = step
            self._save(trainer, (trainer.epoch, trainer.batch_num + 1))

    def cleanup_epoch(self, trainer):
        if self.writer.failed: self.writer.raise_failed()
        # The RNG states a validation cut short resumes from: the validation is redone from its start, whose loader
        # draws again (a DataLoader draws a seed at each pass, shuffled or not).
        if trainer.training and trainer.phase_complete: self._phase_end_rng = get_rng_state()
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
        try: self._save_on_the_way_out(trainer)
        finally:
            self._pos = None  # nothing of this fit is saved by a later one that fails before its before_fit
            # The fit ends (normally, by an error, by a preemption) with every write complete.
            try: self._sharded_writer.wait()
            finally: self.writer.wait()

    def _save_on_the_way_out(self, trainer) -> None:
        # The fit stopped early: keep its progress, unless a training step was cut off halfway (its weights are
        # then neither before nor after that step). The RNG states are those of the moment it stopped (in a
        # validation, those it began with: the resumed fit redoes it).
        # With several processes only after a preemption, where they all stop at the same point (see the docstring).
        if trainer.num_processes > 1 and trainer.preempted is None: return
        if not self._finished and not trainer.in_step and self._pos is not None and self._pos[:2] != self._saved_pos:
            self._save(trainer, self._pos[:2])

    def _save(self, trainer, at: tuple[int, int]) -> None:
        fetch_rng = self._prev_rng if self._ahead and at[1] >= 2 else None  # batch `at` loaded after at-2's cleanup
        cut_validation = not trainer.training and not trainer.phase_complete and self._phase_end_rng is not None
        rng = self._phase_end_rng if cut_validation else get_rng_state()
        processes = trainer.gather_object({"rng": rng, "loader_rng": trainer.loader_rng, "fetch_rng": fetch_rng})
        if processes is None: return  # another process stopped the fit
        epoch, batch = at
        pos = self._pos if self._pos is not None and self._pos[:2] == at else None
        if is_sharded(unwrap_model(trainer.model)):  # every process writes its own shards, in the background
            saved = self._sharded_writer.save(trainer, self.path, at, pos[2] if pos else trainer.loader_rng, processes,
                                              fetch_rng, not trainer.in_step and pos is not None, self.keep)
            if saved is not None: self.last_saved, self._saved_pos = saved, at
            return
        state = trainer_state(trainer, epoch, batch, pos[2] if pos else trainer.loader_rng,
                              processes, fetch_rng, with_checksum=False, rng=rng)  # a sharded model's: collectives
        # Written only where this process's last finished step is `at` (a batch cancelled before its end is not).
        if not (self._main and not trainer.in_step and pos): return
        self._saved_pos = at
        path, run_id = self.path / checkpoint_name(epoch, batch, trainer.run_id), trainer.run_id
        self.writer.submit(state, lambda copy: self._write(copy, path, run_id))

    def _write(self, state: dict, path: Path, run_id: str | None) -> None:
        """The write itself (in the background thread by default): checks, checksum, atomic file, old ones pruned."""
        if bad := non_finite(state):  # a diverged model would become the newest checkpoint and be resumed from
            epoch, batch = state["position"]["epoch"], state["position"]["batch"]
            warnings.warn(f"CheckpointCB: not saving epoch {epoch}, batch {batch}: the weights hold NaN or infinity "
                          f"({', '.join(bad[:3])}); the last checkpoint written stays the newest.", RuntimeWarning)
            return
        state["checksum"] = checksum(state)
        self.last_saved = save_checkpoint(state, path)
        if self.keep is not None:
            for old in checkpoint_files(self.path, run_id)[:-self.keep]:
                if old == path: continue  # file times can tie; never drop the one just written
                with contextlib.suppress(FileNotFoundError): old.unlink()
