"""`Trainer.save`, `Trainer.load`, `Trainer.export` and `Trainer.validate`: keep a trained model,
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
from ..runtime.checkpoint_file import FORMAT, SAVE_FORMAT, newer_format, save_checkpoint
from ..runtime.model_state import apply_opt_states, saving_model
from ..runtime.resume import check_model_state
from ..runtime.sharded_checkpoint import refuse_sharded
from ..runtime.placement import model_device, to_device
from .sandbox import restoring

if TYPE_CHECKING:
    from ..trainer import Trainer

EXPORT_INFO = "aisaac.json"  # the extra file in an exported program that states its input and preprocessing


def save(trainer: Trainer, path: str | os.PathLike, with_opt: bool = True, format: str = "torch") -> Path:
    """`Trainer.save`: the weights (of `trainer.model_to_save` when a callback chose it, else the model's) and, with
    `with_opt`, every optimizer's state by name (after a fit; else the states `load` gave the next fit); atomic."""
    refuse_sharded(saving_model(trainer), "trainer.save")
    if format == "safetensors":  # the weights only, in the format other libraries read
        return save_checkpoint(safetensors_weights(saving_model(trainer)), path, write=write_safetensors)
    if format != "torch":
        raise ValueError(f"save: format is 'torch' (weights and optimizer, for trainer.load) or 'safetensors' "
                         f"(weights only); got {format!r}.")
    opts: dict[str, Any] = {}
    if with_opt and trainer.opts: opts = {name: opt.state_dict() for name, opt in trainer.opts.items()}
    elif with_opt and trainer.opt_state is not None:
        opts = {"opt": trainer.opt_state} if "param_groups" in trainer.opt_state else dict(trainer.opt_state)
    # "opt" also holds the one optimizer's state, as files did before several optimizers.
    single = next(iter(opts.values())) if len(opts) == 1 else None
    return save_checkpoint({"format": SAVE_FORMAT, "model": saving_model(trainer).state_dict(), "opt": single,
                            "opts": opts}, path)


def load(trainer: Trainer, path: str | os.PathLike, with_opt: bool = True, strict: bool = True) -> "Trainer":
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
    fmt = state.get("format") if isinstance(state, dict) else None
    if newer_format(fmt, SAVE_FORMAT) or newer_format(fmt, FORMAT):
        raise CheckpointError(f"{path} was written by a newer version of AIsaac (format '{fmt}'; this version reads "
                              f"'{SAVE_FORMAT}' and '{FORMAT}'). Upgrade AIsaac to load it: pip install -U aisaac.")
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointError(f"{path} is not a file written by trainer.save or CheckpointCB (no 'model' entry); for "
                              f"a bare state_dict use trainer.model.load_state_dict(torch.load(path, weights_only=True)).")
    if strict: check_model_state(state["model"], trainer.model, path)
    else:
        own = trainer.model.state_dict()
        state["model"] = {k: v for k, v in state["model"].items() if k in own and own[k].shape == v.shape}
    trainer.model.load_state_dict(state["model"], strict=strict)
    saved = saved_opt_states(state)
    if with_opt and saved:
        if trainer.opts: apply_opt_states(trainer.opts, saved, path)
        # The next fit's new optimizers start from them: one optimizer's state as it is, several by name.
        trainer.opt_state = next(iter(saved.values())) if len(saved) == 1 else saved
    elif with_opt is False: trainer.opt_state = None
    return trainer


def export(trainer: Trainer, path: str | os.PathLike, example: torch.Tensor, preprocessing: str | None = None,
           dynamic_batch: bool = True) -> Path:
    """Write the model, in eval mode, as a `torch.export` program (`.pt2`) traced on the input batch `example`.

    The program runs in a plain PyTorch script: `torch.export.load(path).module()(x)`; any batch size when
    `dynamic_batch`. It carries `aisaac.json` (read it with `torch.export.load(path, extra_files={'aisaac.json':
    ''})`): the input's shape and dtype, the class names when the data has them, and `preprocessing`, the words
    that say what to do to raw data first (e.g. "pixels / 255, then (x - 0.28) / 0.35, shape (N, 1, 28, 28)").
    """
    from torch.export import Dim
    from ..data.labels import class_names
    model, path = saving_model(trainer), Path(path)
    refuse_sharded(model, "trainer.export")
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
            "preprocessing": preprocessing, "classes": class_names(getattr(trainer.dls, "train", None))}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.export.save(program, path, extra_files={EXPORT_INFO: json.dumps(info)})
    return path


def validate(trainer: Trainer, dl: Any = None) -> dict[str, float]:
    """The loss and metrics on `dl` (default `dls.valid`) as MetricsCB computes them, from one validation pass.

    The pass runs the callbacks that compute (device, mixed precision, the step's predict and get_loss, metrics:
    those ordered before `Order.LOGGER`), so loggers, checkpoints and the progress display are left out; the
    trainer, its callbacks and the optimizer are then as they were (see `restoring`).
    """
    from ..data.loaders import DataLoaders
    from ..order import Order
    if "MetricsCB" not in trainer.named_callbacks:
        raise ValueError("validate reads its numbers from MetricsCB; add MetricsCB() (or CoreCBs) to the trainer.")
    with restoring(trainer):
        trainer.remove_callbacks([cb for cb in trainer.cbs if getattr(cb, "order", 0) >= Order.LOGGER])
        if dl is not None: trainer.dls = DataLoaders(trainer.dls.train, dl)
        trainer.fit(1, lr=getattr(trainer, "lr", None) or 1e-3, train=False)
        log = dict(trainer.epoch_log or {})
    return {k: v for k, v in log.items() if k not in ("epoch", "valid_time")}
def saved_opt_states(state: dict[str, Any]) -> dict[str, Any]:
    """The optimizer states in a file written by trainer.save or CheckpointCB, by optimizer name (files from before
    several optimizers hold the one state under "opt")."""
    if isinstance(state.get("opts"), dict): return {k: v for k, v in state["opts"].items() if v is not None}
    return {"opt": state["opt"]} if state.get("opt") is not None else {}




def safetensors_weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The model's state_dict as safetensors stores it: tied tensors (one tensor under two names, e.g. an embedding
    shared with the output layer) kept once, other views of shared memory copied, every tensor contiguous."""
    out: dict[str, torch.Tensor] = {}
    seen: dict[int, tuple] = {}
    for name, t in model.state_dict().items():
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"save(format='safetensors') stores tensors only, but the model's state entry '{name}' is "
                            f"a {type(t).__name__} (a module's get_extra_state). Save with format='torch' (the "
                            f"default), which keeps it, or have get_extra_state return a tensor.")
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
