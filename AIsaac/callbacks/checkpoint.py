"""`CheckpointCB`: saves what a fit needs to continue exactly, every few batches, every epoch and on the way out."""
from __future__ import annotations

import contextlib
import os
import warnings
from pathlib import Path
from typing import Any

from ..callback import Callback, Order
from ..runtime.args import whole_number
from ..runtime.checkpoint import (checkpoint_files, checkpoint_name, non_finite, remove_stale_temp_files,
                                  save_checkpoint, trainer_state)


class CheckpointCB(Callback):
    '''Writes checkpoints into the folder `path`; `trainer.fit(..., resume_from=path)` continues from the newest

    A checkpoint holds the model, the optimizer, every callback with `state_dict`/`load_state_dict` (schedulers,
    gradient scalers...), the RNG states and the position (epoch, batch, and what replays the epoch's shuffle);
    see AIsaac.checkpoint. It is written every `every_n_batches` training batches (None: never), after each epoch
    when `every_epoch`, and when a phase or the fit stops early (KeyboardInterrupt, an error, a cancel) between two
    training steps, at the cleanup of that phase. Only the `keep` newest files of this run are kept (None: all); other runs' files in the folder are
    never touched. Files are named checkpoint-e<epoch>-b<batch>-<run id>.pt, meaning <batch> batches of epoch <epoch>
    are done. A checkpoint whose weights hold NaN or infinity is not written (a warning says so).
    The epoch's checkpoint is written at its last phase's cleanup_epoch, once the metrics, loggers and monitors have
    recorded the epoch, so that their state in it includes it. Takes no part in side runs (`lr_find`...).
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
        self._pos: Any = None  # where the fit could continue from now: (epoch, batch, loader_rng)
        self._saved_pos: Any = None
        self._between_steps, self._finished = True, False

    def before_fit(self, trainer):
        if self.path.is_dir(): remove_stale_temp_files(self.path)
        # _pos: where the fit could continue from now; _between_steps: no training step is half done.
        self._pos, self._saved_pos, self._between_steps, self._finished = None, None, True, False

    def before_batch(self, trainer):
        if trainer.training: self._between_steps = False

    def after_batch(self, trainer):
        if not trainer.training: return
        self._between_steps = True
        self._pos = (trainer.epoch, trainer.batch_num + 1, trainer.loader_rng)
        if self.every_n_batches and (trainer.batch_num + 1) % self.every_n_batches == 0: self._save(trainer)

    def cleanup_epoch(self, trainer):
        # A phase cut short (an error, an interrupt, a cancel): keep the progress now, before cleanup_fit, where
        # SaveBestCB puts the best weights back into the model.
        if not trainer.phase_complete: return self._save_on_the_way_out(trainer)
        if trainer.training and trainer.run_valid: return  # the epoch ends after its validation phase
        self._pos = (trainer.epoch + 1, 0, None)
        if self.every_epoch: self._save(trainer)

    def after_fit(self, trainer): self._finished = True

    def cleanup_fit(self, trainer): self._save_on_the_way_out(trainer)

    def _save_on_the_way_out(self, trainer) -> None:
        # The fit stopped early: keep its progress, unless a training step was cut off halfway (its weights are
        # then neither before nor after that step). The RNG states are those of the moment it stopped.
        if not self._finished and self._between_steps and self._pos is not None and self._pos[:2] != self._saved_pos:
            self._save(trainer)

    def _save(self, trainer) -> None:
        epoch, batch, loader_rng = self._pos
        state = trainer_state(trainer, epoch, batch, loader_rng)
        if bad := non_finite(state):  # a diverged model would become the newest checkpoint and be resumed from
            warnings.warn(f"CheckpointCB: not saving epoch {epoch}, batch {batch}: the weights hold NaN or infinity "
                          f"({', '.join(bad[:3])}); the last checkpoint written stays the newest.", RuntimeWarning)
            return
        run_id = getattr(trainer, "run_id", None)
        self.last_saved = save_checkpoint(state, self.path / checkpoint_name(epoch, batch, run_id))
        self._saved_pos = (epoch, batch)
        if self.keep is not None:
            for old in checkpoint_files(self.path, run_id)[:-self.keep]:
                if old == self.last_saved: continue  # file times can tie; never drop the one just written
                with contextlib.suppress(FileNotFoundError): old.unlink()
