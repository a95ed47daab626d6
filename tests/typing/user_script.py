"""A user's script, type-checked and run by tests/test_typing.py: the star-export and every Trainer method.

mypy must see each name below through `from AIsaac.all import *`, each method on the Trainer class (read from the
class, since an instance's `__getattr__` would answer any name), and the return types, through annotated variables.
Run as a script (in a scratch folder: it writes log.csv and ckpt/), it does all of it on 64 random images.
"""
from __future__ import annotations

from functools import partial
from typing import Any, Callable

import torch
from torch import nn

import AIsaac
from AIsaac import CoreCBs as PackageCoreCBs, Trainer as PackageTrainer
from AIsaac.all import *


def user_code(dls: DataLoaders) -> Trainer:
    set_seed(42)
    model = get_model_conv()
    xb, _ = next(iter(dls.train))
    lsuv_init(model, [m for m in model.modules() if isinstance(m, nn.Conv2d)], xb)
    tutorial = Trainer(dls, nn.CrossEntropyLoss(), torch.optim.Adam, get_model_conv(),
                       callbacks=[BasicTrainCB(), MetricsCB(Accuracy=Accuracy()), DeviceCB(), ProgressCB()])
    tutorial.fit(1)
    cbs: list[Callback] = [EarlyStoppingCB(patience=2), GradClipCB(1.0), CSVLoggerCB("log.csv"),
                           CheckpointCB("ckpt", keep=1), SaveBestCB()]
    trainer = Trainer(dls, nn.CrossEntropyLoss(), torch.optim.AdamW, model,
                      callbacks=[CoreCBs(Accuracy=Accuracy()), *cbs])
    trainer.add_callbacks([GradAccumCB(2), TerminateOnNaNCB()])
    trainer.remove_callbacks(trainer.GradAccumCB)

    found: LRFindResult = trainer.lr_find(num_it=20, show_plot=False)
    lr: float = found.suggestion
    trainer.fit(3, lr=lr, callbacks=[OneCycleSchedulerCB()])
    # The same fit again from its last checkpoint: it ended there, so nothing is left to train.
    trainer.fit(3, lr=lr, callbacks=[OneCycleSchedulerCB()], resume_from=latest_checkpoint("ckpt"))

    preds: Predictions = trainer.get_preds(act=partial(torch.softmax, dim=-1))
    p, y = trainer.get_preds()
    row_sums: torch.Tensor = preds.preds.sum(1) + 0 * y  # typed: the fields are tensors
    probs: torch.Tensor = trainer.predict(xb[:1])
    prof: ProfileCB = trainer.profile(1, show=False)
    rows: list[tuple[str, str, str]] = trainer.summarize_callbacks(show=False)
    trainer.summarize_model(show=False)
    trainer.show_image_batch(max_n=4)
    main: bool = trainer.is_main_process
    n: int = trainer.num_processes
    total: torch.Tensor = trainer.reduce_sum(torch.ones(()))
    plan = trainer.plan["after_batch"]
    named = dict(trainer.named_callbacks)
    fig = plot_losses(trainer)
    state = get_rng_state()
    set_rng_state(state)
    with restoring(trainer): trainer.fit(1)
    print(preds, row_sums, probs, prof.table(), rows, main, n, total, plan, named, fig, to_cpu(to_device(p, def_device)),
          model_device(model), EVENTS, Order.METRICS, final_epoch_log(trainer), view_source_code)
    return trainer


# Declared on the class itself (in its body or a mixin it lists), not patched on by importing another module.
TRAINER_METHODS: tuple[Callable[..., Any], ...] = (
    Trainer.fit, Trainer.lr_find, Trainer.get_preds, Trainer.predict, Trainer.profile, Trainer.summarize_callbacks,
    Trainer.summarize_model, Trainer.show_image_batch, Trainer.add_callbacks, Trainer.remove_callbacks,
    Trainer.run_callbacks, Trainer.wrap_plan, Trainer.reduce_sum)
def distributed(trainer: Trainer) -> tuple[bool, int, Any]: return trainer.is_main_process, trainer.num_processes, \
    trainer.processes.reduce_sum
# The same names from the package itself (read from AIsaac.all when first asked for).
PACKAGE: tuple[type[Trainer], type[CoreCBs], type[MetricsCB], str] = (
    PackageTrainer, PackageCoreCBs, AIsaac.MetricsCB, AIsaac.__version__)


def data() -> DataLoaders:
    g = torch.Generator().manual_seed(0)
    x, t = torch.randn(64, 1, 28, 28, generator=g), torch.randint(0, 10, (64,), generator=g)
    return DataLoaders.from_tensors((x, t), (x, t), batch_size=16)


def original_vocabulary(trainer: Trainer, model: nn.Module, xb: torch.Tensor) -> None:
    """The original AIsaac's names, as its notebooks use them."""
    with Hooks(model, append_stats) as hooks: model(xb)
    hist: torch.Tensor = get_hist(hooks[0])
    dead: torch.Tensor = get_min(hooks[0])
    one: Hook = hooks[0]
    added: list[Any] = add_callback(trainer, HooksCallback(append_stats, lambda m: isinstance(m, nn.ReLU)))
    remove_callback(trainer, "HooksCallback")
    fig, axs = get_grid(4, title="x")
    show_image(UnNormalize([0.28], [0.35])(xb[0]), ax=axs.flat[0])
    train, valid = get_dataloaders(list(range(8)), list(range(4)), 2)
    idxs: list[int] = mask2idxs([True, False])
    clean_memory()
    print(hist, dead, one, added, fig, train, valid, idxs, str(PPDict(a=1.0)))


if __name__ == "__main__":
    import json

    dls = data()
    trainer = user_code(dls)
    xb, _ = next(iter(dls.train))
    original_vocabulary(trainer, trainer.model, xb)
    probs, targets = trainer.get_preds(act=partial(torch.softmax, dim=-1))
    # What tests/test_typing.py checks against its own reading of the files this run wrote.
    print("RESULT " + json.dumps({"callbacks": sorted(trainer.named_callbacks), "probs_shape": list(probs.shape),
                                  "probs_row_sums": probs.sum(1).tolist(), "targets": targets.tolist(),
                                  "epoch_log": trainer.epoch_log}))
