"""`Trainer.show_image_batch`: the first training batch as the model would see it, after every `before_batch`."""
from __future__ import annotations

from typing import Any, Iterable

from .data.show import class_names, label_titles, show_images
from .exceptions import CancelFitException
from .trainer import Trainer

# Trainer state a fit writes; put back afterwards so that looking at a batch changes nothing.
_FIT_STATE = ("opt", "lr", "n_epochs", "epochs", "run_train", "run_valid", "epoch", "training", "dl", "batch_num",
              "batch", "preds", "loss", "epoch_log")


class _CaptureBatch:
    """Keeps the batch once every other `before_batch` has run, then stops the fit before the model is called."""

    order = float("inf")

    def before_batch(self, trainer):
        self.batch = trainer.batch
        raise CancelFitException()


def first_training_batch(trainer: Trainer, callbacks: Iterable[Any] | None = None) -> Any:
    """The first training batch after the callbacks' `before_batch` (device, augmentation...), via a fit that stops there.

    `callbacks` are added for that fit only, as in `fit`.
    The callbacks see `before_fit`, that batch's `before_batch`, and the cleanups, as in any fit; the trainer's
    state (optimizer, batch, epoch_log...) and the model's train/eval mode are restored afterwards.
    """
    saved = {k: trainer.__dict__[k] for k in _FIT_STATE if k in trainer.__dict__}
    was_training = trainer.model.training
    capture = _CaptureBatch()
    try: trainer.fit(1, lr=saved.get("lr", 1e-3), callbacks=[*(callbacks or []), capture])
    finally:
        for k in _FIT_STATE:
            if k in saved: setattr(trainer, k, saved[k])
            else: trainer.__dict__.pop(k, None)
        trainer.model.train(was_training)
    if not hasattr(capture, "batch"): raise ValueError("The training loader gave no batch; it is empty.")
    return capture.batch


def show_image_batch(self: Trainer, max_n: int = 9, callbacks: Iterable[Any] | None = None, ncols: int | None = None,
                     figsize: tuple[float, float] | None = None, cmap: str | None = "gray"):
    """Show up to `max_n` images of the first training batch as the model sees it, after the callbacks' (and
    `callbacks`') `before_batch` transforms; returns the figure. See `first_training_batch` for what runs."""
    batch = first_training_batch(self, callbacks)
    images = batch[0][:max_n]
    titles = label_titles(batch[1], class_names(self.dls.train), len(images)) if len(batch) > 1 else None
    return show_images(images, titles, ncols=ncols, figsize=figsize, cmap=cmap)


Trainer.show_image_batch = show_image_batch
