"""`Trainer.show_image_batch`: the first training batch as the model would see it, after every `before_batch`."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable

from ..data.labels import class_names, label_titles
from ..display.images import show_images
from ..exceptions import CancelFitException
from .sandbox import restoring

if TYPE_CHECKING:
    from ..trainer import Trainer


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
    state, the model and the callbacks are restored afterwards (see `restoring`).
    """
    capture = _CaptureBatch()
    with restoring(trainer):
        trainer.fit(1, lr=getattr(trainer, "lr", 1e-3), callbacks=[*(callbacks or []), capture])
    if not hasattr(capture, "batch"): raise ValueError("The training loader gave no batch; it is empty.")
    return capture.batch


def show_image_batch(trainer: Trainer, max_n: int = 9, callbacks: Iterable[Any] | None = None, ncols: int | None = None,
                     figsize: tuple[float, float] | None = None, cmap: str | None = "gray"):
    """Show up to `max_n` images of the first training batch as the model sees it, after the callbacks' (and
    `callbacks`') `before_batch` transforms; returns the figure. See `first_training_batch` for what runs."""
    batch = first_training_batch(trainer, callbacks)
    images = batch[0][:max_n]
    titles = label_titles(batch[1], class_names(trainer.dls.train), len(images)) if len(batch) > 1 else None
    return show_images(images, titles, ncols=ncols, figsize=figsize, cmap=cmap)
