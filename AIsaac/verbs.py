"""`TrainerVerbs`: the methods users call on a trainer around a fit (predictions, saving and loading, export, the lr
search, profiling, summaries, freezing). `Trainer` inherits them, so they are on the Trainer's page and an IDE sees
them on a trainer; each is a short method whose work is done in AIsaac.tools or AIsaac.runtime.optimizers."""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence, cast

import torch

from .runtime.optimizers import freeze_to
from .runtime.messages import warn

if TYPE_CHECKING:
    from .callbacks.profile import ProfileCB
    from .tools.lr_find import LRFindResult
    from .tools.predict import Predictions
    from .trainer import Trainer


def _host(verbs: TrainerVerbs) -> Trainer:
    # TrainerVerbs is only ever the base of Trainer: its methods run on the trainer itself.
    return cast("Trainer", verbs)


class TrainerVerbs:
    """The verbs of `Trainer` (see there); typed against the Trainer they run on."""

    # ---- the verbs around a fit (their work is in AIsaac.tools) ----
    def get_preds(self, dl: Any = None, with_targets: bool | None = None, tta: Sequence[Callable] | None = None,
                  act: Callable | None = None, decode: bool = False) -> Predictions:
        """Predictions for every batch of `dl` (default `dls.valid`), concatenated on the CPU, with the targets: a
        `Predictions(preds, targets)` pair (`preds, targets = trainer.get_preds()`), `targets` None with
        `with_targets=False` or for a `dls.test_dl` loader of unlabelled data."""
        from .tools.predict import get_preds
        return get_preds(_host(self), dl, with_targets, tta, act, decode)

    def predict(self, x: Any, tta: Sequence[Callable] | None = None, act: Callable | None = None) -> Any:
        """The model's output for the input batch `x` (for one item pass `x[None]`), on the CPU; `tta`/`act` as in
        get_preds."""
        from .tools.predict import predict
        return predict(_host(self), x, tta, act)

    def validate(self, dl: Any = None) -> dict[str, float]:
        """The loss and metrics on `dl` (default `dls.valid`) as MetricsCB computes them, from one validation pass; the
        trainer, its callbacks and the optimizer are then as they were."""
        from .tools.persist import validate
        return validate(_host(self), dl)

    def save(self, path: str | os.PathLike, with_opt: bool = True, format: str = "torch") -> Path:
        """Write the model's weights, and with `with_opt` the optimizers' state, to `path` (atomic; read back safely
        with `load`); `format="safetensors"` writes the weights only, in the safetensors format."""
        from .tools.persist import save
        return save(_host(self), path, with_opt, format)

    def load(self, path: str | os.PathLike, with_opt: bool = True, strict: bool = True) -> Trainer:
        """Load weights written by `save`, CheckpointCB or SaveBestCB; with `with_opt`, the optimizer's state too (its
        lr stays the fit's). `strict=False` loads the keys that fit and skips the rest."""
        from .tools.persist import load
        return load(_host(self), path, with_opt, strict)

    def export(self, path: str | os.PathLike, example: torch.Tensor, preprocessing: str | None = None,
               dynamic_batch: bool = True) -> Path:
        """Write the model, in eval mode, as a `torch.export` program traced on the input batch `example`, which a plain
        PyTorch script runs: `torch.export.load(path).module()(x)`."""
        from .tools.persist import export
        return export(_host(self), path, example, preprocessing, dynamic_batch)

    def lr_find(self, start_lr: float = 1e-7, end_lr: float = 10., num_it: int = 100, max_mult: float = 4.,
                show_plot: bool = True) -> LRFindResult:
        """Train with the lr growing exponentially from `start_lr` to `end_lr` over `num_it` batches, stopping when the
        loss diverges; then put everything back. Returns the suggestions (`lr_steep`, `lr_min`) and the plot."""
        from .tools.lr_find import lr_find
        return lr_find(_host(self), start_lr, end_lr, num_it, max_mult, show_plot)

    def profile(self, n_epochs: int = 1, lr: float = 1e-3, show: bool = True, count_cpu: bool = False,
                **fit_kwargs: Any) -> ProfileCB:
        """Fit under a `ProfileCB` (the time and host syncs of each callback at each event; its table printed when
        `show`) and return it; `fit_kwargs` go to `fit`."""
        from .tools.profiling import profile
        return profile(_host(self), n_epochs, lr, show, count_cpu, **fit_kwargs)

    def summarize_callbacks(self, show: bool = True) -> list[tuple[str, str, str]]:
        """Show (HTML in a notebook, else text) and return the rows (Step, Callback, Doc String): who runs at each
        event."""
        from .tools.summarize import summarize_callbacks
        return summarize_callbacks(_host(self), show)

    def summarize_model(self, show: bool = True, **torchinfo_kwargs: Any) -> Any:
        """Layers, shapes, parameter counts and mult-adds from `torchinfo.summary` on one training batch's inputs."""
        from .tools.summarize import summarize_model
        return summarize_model(_host(self), show, **torchinfo_kwargs)

    def show_image_batch(self, max_n: int = 9, callbacks: Iterable[Any] | None = None, ncols: int | None = None,
                         figsize: tuple[float, float] | None = None, cmap: str | None = "gray") -> Any:
        """Show up to `max_n` images of the first training batch as the model sees it (after the callbacks'
        `before_batch`); returns the figure."""
        from .tools.show_batch import show_image_batch
        return show_image_batch(_host(self), max_n, callbacks, ncols, figsize, cmap)

    # ---- freezing ----
    def freeze_to(self, n: int, train_norm: bool = True) -> None:
        """Train only the splitter's groups from the `n`-th on (`n < 0` counts from the end); with `train_norm`,
        normalisation layers train everywhere (see AIsaac.runtime.optimizers.freeze_to)."""
        freeze_to(_host(self).model, _host(self).splitter, _host(self).opts.values(), n, train_norm)

    def freeze(self, train_norm: bool = True) -> None:
        """Train only the last parameter group (the head, with `body_head_splitter`)."""
        if _host(self).splitter is None:
            warn("freeze() with no splitter: the model is one parameter group, so all of it still trains. "
                 "Give the Trainer a splitter, e.g. Trainer(..., splitter=body_head_splitter).", UserWarning)
        self.freeze_to(-1, train_norm)

    def unfreeze(self) -> None:
        """Train every parameter group."""
        self.freeze_to(0)
