"""Writes the API reference under docs/api/ and its part of mkdocs.yml's nav: by concept, each page named for the
classes (else the functions) users import from it.

    python docs/gen_api.py      # after adding or removing a module; tests/docs/test_api_pages.py checks it was run

One page per module of the package (its path mirrors the module's). A page opens with its headline objects (what
`AIsaac.all` exports from the module, classes first), each with its constructor and a short example, and ends with
the rest of the module (its docstring and helpers).
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The nav by concept. A module named here goes to its concept; any other goes to its folder's group (FOLDERS).
CONCEPTS = [
    ("The trainer and its loop", ("trainer", "verbs", "callback", "order", "records", "callback_set",
                                  "callback_functions", "dispatch", "checks", "events", "exceptions")),
    ("Callbacks: the training step", ("callbacks.basic_train", "callbacks.momentum_train", "callbacks.grad_accum",
                                      "callbacks.grad_clip", "callbacks.mixed_precision", "callbacks.compile",
                                      "callbacks.cuda_graph")),
    ("Callbacks: device, processes, extra modules", ("callbacks.device", "callbacks.accelerate",
                                                     "callbacks.accelerate_launch", "callbacks.frozen_modules")),
    ("Callbacks: metrics and display", ("callbacks.presets", "callbacks.metrics", "callbacks.progress",
                                        "callbacks.activation_stats", "callbacks.hooks_callback",
                                        "callbacks.throughput", "callbacks.profile")),
    ("Callbacks: learning rates", ("callbacks.schedulers", "callbacks.plateau", "callbacks.lr_finder")),
    ("Callbacks: checkpoints, monitoring, weights", ("callbacks.checkpoint", "callbacks.monitor",
                                                     "callbacks.early_stopping", "callbacks.save_best",
                                                     "callbacks.terminate_on_nan", "callbacks.ema",
                                                     "callbacks.one_batch")),
    ("Callbacks: batches on the device", ("callbacks.batch_augmentation", "callbacks.batch_transform",
                                          "callbacks.mixup")),
    ("Callbacks: loggers and trackers", ("callbacks.csv_logger", "callbacks.tensorboard", "callbacks.logger",
                                         "callbacks.mlflow_logger", "callbacks.wandb_logger",
                                         "callbacks.optuna_pruning")),
]
FOLDERS = [("More callbacks", "callbacks."), ("Runtime (device, RNG, checkpoint files, distributed)", "runtime."),
           ("Tools (predict, lr search, profiling, summaries, side runs)", "tools."), ("Display", "display."),
           ("Data", "data."), ("Models", "models.")]
# Internals, left out of the reference: the command line, the demo, the notebook plumbing behind the display.
INTERNAL = ("all", "cli", "demo", "display.html_bar", "display.notebook", "display.tables", "display.figure")
# mkdocstrings options of one headline object on top of mkdocs.yml's. The Trainer's page lists every method users
# call on a trainer, those it inherits from a base class too.
OPTIONS = {"Trainer": ("inherited_members: true",)}
# A short example of each headline class, shown under its name and before its constructor. `trainer`, `dls`,
# `model` are the reader's; each example is Python that compiles (tests/docs/test_api_pages.py).
EXAMPLES = {
    "Trainer": "cbs = [DeviceCB(), BasicTrainCB(), MetricsCB(acc=Accuracy()), ProgressCB()]\n"
               "trainer = Trainer(dls, nn.CrossEntropyLoss(), torch.optim.AdamW, model, cbs)\n"
               "trainer.fit(3, lr=1e-3)",
    "TrainerVerbs": "trainer.lr_find().suggestion\ntrainer.summarize_callbacks()\ntrainer.freeze()",
    "Callback": "class PrintLossCB(Callback):\n    order = Order.LOGGER\n"
                "    def after_batch(self, trainer):\n        if trainer.training: print(trainer.loss.item())\n\n"
                "trainer.fit(1, callbacks=[PrintLossCB()])",
    "Order": "class MyLoggerCB(Callback):\n    order = Order.LOGGER   # after MetricsCB, before ProgressCB",
    "CallbackSet": "trainer.add_callbacks([GradClipCB(1.0)])   # the trainer's CallbackSet plans dispatch again",
    "with_cbs": "@with_cbs('batch', CancelBatchException)\ndef one_batch(self):\n"
                "    self.run_callbacks(('predict', 'get_loss'))",
    "BatchLosses": "trainer.MetricsCB.losses_batch   # one record per batch: {'training': bool, 'loss': float}",
    "Logged": "trainer.log('kl', kl)   # any value, from any callback: table, epoch_log, trackers",
    "CancelBatchException": "class SkipEmptyCB(Callback):\n    def before_batch(self, trainer):\n"
                            "        if len(trainer.batch[0]) == 0: raise CancelBatchException()",
    "BasicTrainCB": "cbs = [DeviceCB(), BasicTrainCB(), MetricsCB()]\n"
                    "trainer = Trainer(dls, loss_func, opt_func, model, cbs)\n"
                    "BasicTrainCB(n_inp=2)   # two inputs: model(x1, x2); the rest of the batch are targets",
    "MomentumTrainCB": "trainer.fit(3, callbacks=[MomentumTrainCB(0.9)])   # instead of BasicTrainCB",
    "GradAccumCB": "trainer.fit(3, callbacks=[GradAccumCB(4)])   # one optimizer step per 4 batches",
    "GradClipCB": "trainer.fit(3, callbacks=[GradClipCB(1.0)])   # clip the gradients' norm before each real step",
    "MixedPrecisionCB": "trainer.fit(3, callbacks=[MixedPrecisionCB(torch.bfloat16)])   # float16 adds a scaler",
    "CompileCB": "trainer.fit(3, callbacks=[CompileCB()])   # torch.compile for the fit, eager if it fails",
    "CudaGraphCB": "opt_func = functools.partial(torch.optim.Adam, capturable=True)\n"
                   "cbs = [CudaGraphCB(), DeviceCB(), MetricsCB()]\n"
                   "Trainer(dls, loss_func, opt_func, model, cbs)",
    "DeviceCB": "DeviceCB()          # CUDA, MPS or CPU, whichever is there\nDeviceCB('cpu')",
    "AccelerateCB": "cbs = [AccelerateCB(mixed_precision='bf16'), DeviceCB(), MetricsCB()]\n"
                    "Trainer(dls, loss_func, opt_func, model, cbs)   # python, torchrun or accelerate launch",
    "CoreCBs": "cbs = [CoreCBs(Accuracy=Accuracy())]   # DeviceCB, BasicTrainCB, MetricsCB, ...\n"
               "Trainer(dls, nn.CrossEntropyLoss(), torch.optim.AdamW, model, cbs)",
    "MetricsCB": "trainer.fit(3, callbacks=[MetricsCB(Accuracy=Accuracy())])\n"
                 "trainer.epoch_log         # {'epoch': 2, 'train': ..., 'valid': ...}\n"
                 "trainer.MetricsCB.plot()  # the losses and metrics",
    "ProgressCB": "trainer.fit(3, callbacks=[ProgressCB()])   # bars and the epoch table (HTML in a notebook)",
    "ActivationStatsCB": "trainer.fit(1, callbacks=[ActivationStatsCB()])\n"
                         "trainer.ActivationStatsCB.color_dim()",
    "HooksCallback": "def record_mean(hook, module, inputs, output):\n"
                     "    hook.mean = output.mean().item()\n\n"
                     "trainer.fit(1, callbacks=[HooksCallback(record_mean)])",
    "ThroughputCB": "trainer.fit(3, callbacks=[ThroughputCB()])   # samples_per_s in epoch_log and the table",
    "FrozenModulesCB": "# a teacher moved with the model, in eval mode, without gradients\n"
                       "trainer.fit(3, callbacks=[FrozenModulesCB(teacher=teacher), DistillCB()])",
    "ProfileCB": "trainer.profile(1)   # fits under ProfileCB and prints its table",
    "BatchSchedulerCB": "trainer.fit(5, lr=1e-2, callbacks=[OneCycleSchedulerCB()])\n"
                        "step_lr = functools.partial(StepLR, step_size=2)\n"
                        "trainer.fit(5, callbacks=[EpochSchedulerCB(step_lr)])\n"
                        "trainer.fit(5, callbacks=[WarmupCosineSchedulerCB(warmup=0.1)])",
    "FitSchedulerCB": "class LinearDecayCB(FitSchedulerCB):   # sized by the fit\n"
                      "    def build(self, opt, total):\n"
                      "        return LinearLR(opt, 1.0, 0.01, total_iters=total)",
    "ReduceLROnPlateauCB": "plateau = ReduceLROnPlateauCB(monitor='valid', factor=0.1, patience=2)\n"
                           "trainer.fit(10, callbacks=[plateau])",
    "LRFinderCB": "trainer.fit(3, lr=trainer.lr_find().suggestion)   # lr_find runs LRFinderCB",
    "CheckpointCB": "trainer.fit(5, callbacks=[CheckpointCB('ckpt', every_n_batches=500)])\n"
                    "trainer.fit(5, resume_from='ckpt')   # exact resume, mid-epoch included",
    "MonitorCB": "class PrintBestCB(MonitorCB):\n"
                 "    def on_value(self, trainer, value, improved):\n"
                 "        if improved: print('best', self.monitor, value)",
    "EarlyStoppingCB": "trainer.fit(20, callbacks=[EarlyStoppingCB(monitor='valid', patience=3)])",
    "SaveBestCB": "trainer.fit(20, callbacks=[SaveBestCB(path='best.pt')])\ntrainer.load('best.pt')",
    "TerminateOnNaNCB": "trainer.fit(5, callbacks=[TerminateOnNaNCB(every=50)])",
    "EMACB": "trainer.fit(5, callbacks=[EMACB(0.999, validate_with_ema=True)])\ntrainer.EMACB.model   # the average",
    "SWACB": "trainer.fit(10, callbacks=[SWACB(start_epoch=5)])   # the average of epochs 5 to 9",
    "OneBatchCB": "trainer.fit(1, callbacks=[OneBatchCB()])   # a smoke test: one batch",
    "BatchAugmentationCB": "trainer.fit(5, callbacks=[BatchAugmentationCB(TF.hflip)])",
    "BatchTransformCB": "class NoiseCB(BatchTransformCB):\n"
                        "    def transform(self, xb, yb): return xb + 0.1 * torch.randn_like(xb), yb",
    "MixUpCB": "trainer.fit(5, callbacks=[MixUpCB(0.4)])   # or CutMixCB(1.0)",
    "CSVLoggerCB": "trainer.fit(5, callbacks=[CSVLoggerCB('history.csv')])",
    "TensorBoardCB": "trainer.fit(5, callbacks=[TensorBoardCB('runs/exp1')])",
    "LoggerCB": "class PrintLoggerCB(LoggerCB):\n"
                "    def write_scalars(self, values, step, per): print(per, step, values)",
    "MLflowLoggerCB": "trainer.fit(2, callbacks=[MLflowLoggerCB(run_name='conv-fashion')])",
    "WandbLoggerCB": "trainer.fit(2, callbacks=[WandbLoggerCB(project='fashion', mode='offline')])",
    "OptunaPruningCB": "trainer.fit(5, lr=lr, callbacks=[OptunaPruningCB(trial, monitor='valid')])",
    "DataLoaders": "dls = DataLoaders.from_tensors((x_train, y_train), (x_valid, y_valid), 64)\n"
                   "dls = DataLoaders.from_dataset_dict(dd.with_transform(normalize), 64)\ndls.show_batch()",
    "TensorLoader": "dls = DataLoaders.from_tensors((x_train, y_train), (x_valid, y_valid), 64,\n"
                    "                               device='cuda')   # TensorLoaders on the GPU",
    "DictCollate": "DataLoaders.from_dataset_dict(dd, 32, inputs=['input_ids'],\n"
                   "                              targets=['label'])",
    "LRFindResult": "result = trainer.lr_find()\ntrainer.fit(3, lr=result.suggestion)",
    "Predictions": "preds, targets = trainer.get_preds()",
    "PredictionCB": "preds, targets = trainer.get_preds(tta=[TF.hflip])",
    "Snapshot": "with restoring(trainer):\n    trainer.fit(1)   # the trainer is put back as it was",
    "UnNormalize": "show_images(UnNormalize(0.28, 0.35)(xb[:8]))",
    "PPDict": "trainer.epoch_log",
    "Mean": "m = Mean().update(torch.tensor(2.0)).update(torch.tensor(4.0))\nm.compute()   # tensor(3.)",
    "Accuracy": "trainer.fit(3, callbacks=[MetricsCB(Accuracy=Accuracy())])",
    "Hooks": "with Hooks(model, lambda hook, mod, inp, out: print(out.shape)):\n    model(xb)",
    "Preempted": "trainer.fit(10, callbacks=[CheckpointCB('ckpt')])   # SIGTERM: saves, raises Preempted (exit 75)",
    "OneProcess": "trainer.is_main_process, trainer.num_processes",
}


def modules() -> list[str]:
    pkg = ROOT / "AIsaac"
    names = [".".join(p.relative_to(pkg).with_suffix("").parts) for p in pkg.rglob("*.py")]
    return sorted(n for n in names if not n.endswith("__init__") and n not in INTERNAL)


def _exported() -> dict[str, list[str]]:
    """For each module, the names `AIsaac.all` imports from it (read from all.py's text, without importing torch)."""
    tree = ast.parse((ROOT / "AIsaac" / "all.py").read_text())
    out: dict[str, list[str]] = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
            out.setdefault(node.module, []).extend(a.name for a in node.names)
    return out


def headline(module: str) -> list[str]:
    """The objects a page opens with: the classes the module defines that `AIsaac.all` exports (else its exported
    functions; else a public class it defines), in the order of the source."""
    tree = ast.parse((ROOT / "AIsaac" / (module.replace(".", "/") + ".py")).read_text())
    exported = set(_exported().get(module, ()))
    classes = [n.name for n in tree.body if isinstance(n, ast.ClassDef) and not n.name.startswith("_")]
    functions = [n.name for n in tree.body if isinstance(n, ast.FunctionDef) and not n.name.startswith("_")]
    return ([c for c in classes if c in exported] or list(dict.fromkeys(f for f in functions if f in exported))
            or classes[:1])


def title(module: str) -> str:
    """The page's name in the nav: its headline objects, else the module."""
    names = headline(module)
    if not names: return f"AIsaac.{module}"
    return ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")


def concept_of(name: str) -> str:
    for concept, members in CONCEPTS:
        if name in members: return concept
    for concept, prefix in FOLDERS:
        if name.startswith(prefix): return concept
    raise ValueError(f"AIsaac.{name} belongs to no group of the API reference; add it to CONCEPTS in docs/gen_api.py.")


def nav_block(mods: list[str]) -> str:
    lines = ["  - API reference:"]
    for concept in [c for c, _ in CONCEPTS] + [c for c, _ in FOLDERS]:
        members = [m for m in mods if concept_of(m) == concept]
        order = {m: i for c, ms in CONCEPTS if c == concept for i, m in enumerate(ms)}
        members.sort(key=lambda m: (order.get(m, len(order)), title(m).lower()))
        if not members: continue
        lines.append(f"    - \"{concept}\":")
        lines += [f"      - \"{title(m)}\": api/{m.replace('.', '/')}.md" for m in members]
    return "\n".join(lines) + "\n"


def fitted(code: str, width: int = 76) -> str:
    """`code` with the comment of a line longer than `width` moved to a line of its own above it (the page shows
    about 76 characters of a code line)."""
    out = []
    for line in code.splitlines():
        code_part, sep, comment = line.partition("   # ")
        if len(line) > width and sep:
            indent = line[:len(line) - len(line.lstrip())]
            out += [f"{indent}# {comment}", code_part.rstrip()]
        else: out.append(line)
    return "\n".join(out)


def page_text(module: str) -> str:
    """The Markdown of `module`'s API page: each headline object with its example, then the rest of the module."""
    names = headline(module)
    parts = [f"# {', '.join(f'`{n}`' for n in names)}\n" if names else f"# `AIsaac.{module}`\n"]
    for name in names:
        if name in EXAMPLES: parts.append(f"```python\n{fitted(EXAMPLES[name])}\n```\n")
        options = "".join(f"      {o}\n" for o in ("show_root_heading: true", "show_root_full_path: false",
                                                 *OPTIONS.get(name, ())))
        parts.append(f"::: AIsaac.{module}.{name}\n    options:\n{options}")
    if names:
        parts.append(f"## More in `AIsaac.{module}`\n")
        filters = ", ".join(['"!^_"', *(f'"!^{n}$"' for n in names)])
        parts.append(f"::: AIsaac.{module}\n    options:\n      filters: [{filters}]\n")
    else:
        parts.append(f"::: AIsaac.{module}\n")
    return "\n".join(parts)


def main() -> None:
    mods = modules()
    api = ROOT / "docs" / "api"
    for old in api.rglob("*.md"): old.unlink()
    for m in mods:
        page = api / (m.replace(".", "/") + ".md")
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text(page_text(m))
    cfg = ROOT / "mkdocs.yml"
    text = cfg.read_text()
    text = re.sub(r"  - API reference:\n(?:    .*\n)*", nav_block(mods), text)
    cfg.write_text(text)


if __name__ == "__main__":
    main()
