"""`Trainer.save`, `Trainer.load`, `Trainer.export` and `Trainer.validate` (the `PersistMixin`): keep a trained model,
ship it, and measure it.

`save` writes the weights (and the optimizer's state) as tensors and plain values, so `load` reads them with
`torch.load(weights_only=True)`: loading runs no code from the file. `export` writes a `torch.export` program, which a
plain PyTorch script runs without AIsaac or the model's class (`torch.export.load(path).module()(x)`).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..exceptions import CheckpointError
from ..runtime.checkpoint import check_model_state, save_checkpoint
from ..runtime.device import model_device, to_device
from .sandbox import restoring

if TYPE_CHECKING:
    from ..trainer import Trainer

SAVE_FORMAT = "AIsaac model 1"
EXPORT_INFO = "aisaac.json"  # the extra file in an exported program that states its input and preprocessing


def load_opt_state(opt: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Load a saved optimizer state (momentum buffers, Adam's moments, step counts) into `opt`, keeping `opt`'s own
    hyperparameters (lr, betas, weight decay): those are the current fit's."""
    hyper = [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]
    try: opt.load_state_dict(state)
    except (ValueError, KeyError) as e:
        raise CheckpointError(f"The saved optimizer state does not fit this optimizer ({e}); load with the opt_func "
                              f"and model it was saved with, or pass with_opt=False to load only the weights.") from e
    for g, h in zip(opt.param_groups, hyper): g.update(h)


class PersistMixin:
    """`Trainer.save`, `Trainer.load`, `Trainer.export`, `Trainer.validate`."""

    model: torch.nn.Module
    opt: Any
    dls: Any
    opt_state: dict[str, Any] | None

    def save(self, path: str | os.PathLike, with_opt: bool = True, format: str = "torch") -> Path:
        """Write the model's weights, and with `with_opt` the optimizer's state (after a fit), to `path`; atomic.

        `format="safetensors"` writes the weights only (safetensors holds tensors, not an optimizer's state) in the
        file format other libraries read (`safetensors.torch.load_model(model, path)`); it needs `safetensors`.
        """
        if format == "safetensors":
            return save_checkpoint(safetensors_weights(self.model), path, write=write_safetensors)
        if format != "torch":
            raise ValueError(f"save: format is 'torch' (weights and optimizer, for trainer.load) or 'safetensors' "
                             f"(weights only); got {format!r}.")
        opt = self.opt.state_dict() if with_opt and self.opt is not None else self.opt_state if with_opt else None
        return save_checkpoint({"format": SAVE_FORMAT, "model": self.model.state_dict(), "opt": opt}, path)

    def load(self, path: str | os.PathLike, with_opt: bool = True, strict: bool = True) -> "Trainer":
        """Load weights written by `save` (or by CheckpointCB) into the model; with `with_opt`, the optimizer's state
        too, into the current optimizer and the next fit's (its lr and other hyperparameters stay the fit's).

        Safe loading (`weights_only`): the file's code is never run. A file from another model raises CheckpointError
        naming the missing, unexpected and mis-shaped keys; `strict=False` loads the keys that fit and skips the rest.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"No file at {path}; trainer.save(path) writes one.")
        try: state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise CheckpointError(f"{path} cannot be loaded safely: {e}. trainer.load reads files written by "
                                  f"trainer.save or CheckpointCB (tensors and plain values only).") from e
        if not isinstance(state, dict) or "model" not in state:
            raise CheckpointError(f"{path} is not a file written by trainer.save or CheckpointCB (no 'model' entry); for "
                                  f"a bare state_dict use trainer.model.load_state_dict(torch.load(path, weights_only=True)).")
        if strict: check_model_state(state["model"], self.model, path)
        else:
            own = self.model.state_dict()
            state["model"] = {k: v for k, v in state["model"].items() if k in own and own[k].shape == v.shape}
        self.model.load_state_dict(state["model"], strict=strict)
        # trainer.save writes "opt"; CheckpointCB files hold every optimizer under "opts" (the single one as "opt").
        opt = state["opts"].get("opt") if isinstance(state.get("opts"), dict) else state.get("opt")
        if with_opt and opt is not None:
            if self.opt is not None: load_opt_state(self.opt, opt)
            self.opt_state = opt  # the next fit's new optimizer starts from it
        elif with_opt is False: self.opt_state = None
        return self  # type: ignore[return-value]

    def export(self, path: str | os.PathLike, example: torch.Tensor, preprocessing: str | None = None,
               dynamic_batch: bool = True) -> Path:
        """Write the model, in eval mode, as a `torch.export` program (`.pt2`) traced on the input batch `example`.

        The program runs in a plain PyTorch script: `torch.export.load(path).module()(x)`; any batch size when
        `dynamic_batch`. It carries `aisaac.json` (read it with `torch.export.load(path, extra_files={'aisaac.json':
        ''})`): the input's shape and dtype, the class names when the data has them, and `preprocessing`, the words
        that say what to do to raw data first (e.g. "pixels / 255, then (x - 0.28) / 0.35, shape (N, 1, 28, 28)").
        """
        from torch.export import Dim
        from ..display.images import class_names
        model, path = self.model, Path(path)
        x = to_device(example, model_device(model))
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"export takes one input batch as a tensor (e.g. xb[:2]); got {type(example).__name__}.")
        # A batch of one would fix the batch size at 1 in the program; two rows keep it free.
        traced = torch.cat([x, x]) if dynamic_batch and len(x) == 1 else x
        was_training = model.training
        try:
            model.eval()
            program = torch.export.export(model, (traced,), dynamic_shapes=({0: Dim.AUTO},) if dynamic_batch else None)
        finally: model.train(was_training)
        info = {"input": {"shape": ["N" if dynamic_batch else len(x), *x.shape[1:]], "dtype": str(x.dtype).replace("torch.", ""),
                          "device": str(x.device)},
                "preprocessing": preprocessing, "classes": class_names(getattr(self.dls, "train", None))}
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.export.save(program, path, extra_files={EXPORT_INFO: json.dumps(info)})
        return path

    def validate(self, dl: Any = None) -> dict[str, float]:
        """The loss and metrics on `dl` (default `dls.valid`) as MetricsCB computes them, from one validation pass.

        The pass runs the callbacks that compute (device, mixed precision, the step's predict and get_loss, metrics:
        those ordered before `Order.LOGGER`), so loggers, checkpoints and the progress display are left out; the
        trainer, its callbacks and the optimizer are then as they were (see `restoring`).
        """
        from ..callback import Order
        from ..data.loaders import DataLoaders
        trainer: Any = self
        if "MetricsCB" not in trainer.named_callbacks:
            raise ValueError("validate reads its numbers from MetricsCB; add MetricsCB() (or CoreCBs) to the trainer.")
        with restoring(trainer):
            trainer.remove_callbacks([cb for cb in trainer.cbs if getattr(cb, "order", 0) >= Order.LOGGER])
            if dl is not None: trainer.dls = DataLoaders(trainer.dls.train, dl)
            trainer.fit(1, lr=getattr(trainer, "lr", None) or 1e-3, train=False)
            log = dict(trainer.epoch_log or {})
        return {k: v for k, v in log.items() if k not in ("epoch", "valid_time")}


def safetensors_weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The model's state_dict as safetensors stores it: tied tensors (one tensor under two names, e.g. an embedding
    shared with the output layer) kept once, other views of shared memory copied, every tensor contiguous."""
    out: dict[str, torch.Tensor] = {}
    seen: dict[int, tuple] = {}
    for name, t in model.state_dict().items():
        t = t.detach()
        key = (t.dtype, tuple(t.shape), t.stride(), t.storage_offset())
        ptr = t.untyped_storage().data_ptr() if t.numel() else None
        if ptr is not None and ptr in seen:
            if seen[ptr] == key: continue  # tied: safetensors.torch.load_model fills the other names back in
            t = t.clone()  # part of another tensor's memory: its own copy
        elif ptr is not None: seen[ptr] = key
        out[name] = t.contiguous().cpu()
    return out


def write_safetensors(tensors: dict[str, torch.Tensor], f: Any) -> None:
    """Write `tensors` to the open binary file `f` in the safetensors format (for `save_checkpoint`)."""
    try: from safetensors.torch import save
    except ImportError as e:
        raise ImportError("trainer.save(path, format='safetensors') needs the safetensors package: pip install "
                          "safetensors (or pip install 'aisaac[safetensors]').") from e
    f.write(save(tensors, metadata={"format": SAVE_FORMAT}))
