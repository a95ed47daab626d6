"""`Trainer.summarize_model`: a per-layer summary (torchinfo) of the model on one batch of the train loader."""
from __future__ import annotations

from typing import Any

from .device import to_device
from .model_device import model_device
from .trainer import Trainer

DEFAULT_COLUMNS = ("input_size", "output_size", "num_params", "mult_adds")


def summarize_model(self: Trainer, show: bool = True, **torchinfo_kwargs: Any):
    """Layers, shapes, parameter counts and mult-adds from `torchinfo.summary` on one training batch's inputs.

    The batch comes straight from `dls.train` (before callbacks) and is moved to the model's device; the model's
    train/eval mode is kept. Extra keyword arguments go to `torchinfo.summary` (depth, col_names, ...).
    Returns torchinfo's `ModelStatistics` (printing it shows the table; `.total_params` etc. hold the numbers).
    """
    try:
        import torchinfo
    except ImportError as e:
        raise ImportError("summarize_model needs the torchinfo package: pip install torchinfo "
                          "(or pip install 'aisaac[inspect]').") from e
    batch = next(iter(self.dls.train), None)
    if batch is None: raise ValueError("The training loader gave no batch; summarize_model needs one to run the model.")
    device = model_device(self.model)
    xb = to_device(batch[0], device)
    was_training = self.model.training
    kwargs = {"col_names": DEFAULT_COLUMNS, "verbose": 0, "mode": "train" if was_training else "eval",
              **torchinfo_kwargs}
    try: stats = torchinfo.summary(self.model, input_data=[xb], device=device, **kwargs)
    finally: self.model.train(was_training)
    if show: print(stats)
    return stats


Trainer.summarize_model = summarize_model
