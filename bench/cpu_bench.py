"""CPU benchmark: AIsaac against a hand-written loop (and fastai, Lightning, Ignite when installed), in one process.

Every framework gets the same model (re-initialised from one seed), the same torch DataLoaders and the same batches,
one thread, and runs in turn in each repetition; we report the median fit time and its ratio to the hand-written loop.

  python bench/cpu_bench.py                   # Fashion-MNIST size, 3 epochs, 5 repetitions, linear and conv
  python bench/cpu_bench.py --quick           # small data, 1 epoch, 2 repetitions (a smoke test for CI)
  bash bench/setup_peers.sh                   # first, to compare with fastai, Lightning and Ignite
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import io
import platform
import sys
import time

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from common import DEFAULT_DATA, MODELS, fashion_mnist, hand_fit, median

from AIsaac.all import Accuracy, BasicTrainCB, DataLoaders, DeviceCB, MetricsCB, ProgressCB, Trainer

CPU = torch.device("cpu")


def run_hand(model, train_dl, valid_dl, epochs, lr): return hand_fit(model, train_dl, valid_dl, epochs, lr, CPU)


def run_aisaac(model, train_dl, valid_dl, epochs, lr):
    """The tutorial's four callbacks (with AIsaac's dependency-free Accuracy, as the hand loop computes it)."""
    trainer = Trainer(DataLoaders(train_dl, valid_dl), nn.CrossEntropyLoss(), torch.optim.Adam, model,
                      [BasicTrainCB(), MetricsCB(Accuracy=Accuracy()), DeviceCB(CPU), ProgressCB(bars=False)])
    with contextlib.redirect_stdout(io.StringIO()): trainer.fit(epochs, lr)
    return trainer.MetricsCB.metrics_epoch[-1]


def run_fastai(model, train_dl, valid_dl, epochs, lr):
    import fastai.callback.progress  # noqa: F401  (adds no_bar, as fastai.vision.all does)
    from fastai.data.core import DataLoaders as FDataLoaders
    from fastai.learner import Learner
    from fastai.metrics import accuracy
    from fastai.optimizer import OptimWrapper
    learn = Learner(FDataLoaders(train_dl, valid_dl, device=CPU), model, loss_func=nn.CrossEntropyLoss(),
                    opt_func=functools.partial(OptimWrapper, opt=torch.optim.Adam), metrics=accuracy)
    with learn.no_bar(), learn.no_logging(): learn.fit(epochs, lr)
    return list(learn.recorder.values[-1])


def run_lightning(model, train_dl, valid_dl, epochs, lr):
    import logging
    import pytorch_lightning as pl
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)

    class Module(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.model, self.loss_func = model, nn.CrossEntropyLoss()
        def training_step(self, batch, i):
            return self.loss_func(self.model(batch[0]), batch[1])
        def validation_step(self, batch, i):
            preds = self.model(batch[0])
            self.log("valid_loss", self.loss_func(preds, batch[1]), on_epoch=True)
            self.log("accuracy", (preds.argmax(-1) == batch[1]).float().mean(), on_epoch=True)
        def configure_optimizers(self): return torch.optim.Adam(self.parameters(), lr)

    trainer = pl.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, enable_progress_bar=False, logger=False,
                         enable_checkpointing=False, enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(Module(), train_dl, valid_dl)
    return {k: float(v) for k, v in trainer.callback_metrics.items()}


def run_ignite(model, train_dl, valid_dl, epochs, lr):
    from ignite.engine import Events, create_supervised_evaluator, create_supervised_trainer
    from ignite.metrics import Accuracy as IAccuracy, Loss
    loss_func = nn.CrossEntropyLoss()
    trainer = create_supervised_trainer(model, torch.optim.Adam(model.parameters(), lr), loss_func, device=CPU)
    evaluator = create_supervised_evaluator(model, {"accuracy": IAccuracy(), "loss": Loss(loss_func)}, device=CPU)
    trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda _: evaluator.run(valid_dl))
    trainer.run(train_dl, max_epochs=epochs)
    return evaluator.state.metrics


RUNNERS = {"hand": run_hand, "aisaac": run_aisaac, "fastai": run_fastai, "lightning": run_lightning, "ignite": run_ignite}
PEER_MODULES = {"fastai": "fastai.learner", "lightning": "pytorch_lightning", "ignite": "ignite.engine"}


def unavailable(name: str) -> str | None:
    """Why framework `name` cannot run (None when it can): not installed, or installed but failing to import."""
    if name not in PEER_MODULES: return None
    try: __import__(PEER_MODULES[name])
    except ModuleNotFoundError as e:
        if e.name == PEER_MODULES[name].split(".")[0]: return "not installed"
        return f"installed but does not import: {e}"  # e.g. a dependency setup_peers.sh did not pin
    except Exception as e: return f"installed but does not import: {type(e).__name__}: {e}"
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="2,000 training images, 1 epoch, 2 repetitions")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--n-train", type=int, default=60000)
    ap.add_argument("--n-valid", type=int, default=10000)
    ap.add_argument("--bs", type=int, default=64)
    ap.add_argument("--models", default="linear,conv")
    ap.add_argument("--frameworks", default="hand,aisaac,fastai,lightning,ignite")
    ap.add_argument("--data", default=DEFAULT_DATA, help="folder with the Fashion-MNIST idx .gz files")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                    help="cpu: this process's CPU time, steadier than wall time on a machine shared with busy processes")
    a = ap.parse_args()
    if a.quick: a.n_train, a.n_valid, a.epochs, a.reps = 2000, 500, 1, 2
    torch.set_num_threads(a.threads)
    clock = time.perf_counter if a.clock == "wall" else time.process_time
    (xt, yt), (xv, yv), source = fashion_mnist(a.data, a.n_train, a.n_valid)
    why = {f: unavailable(f) for f in a.frameworks.split(",")}
    frameworks = [f for f, reason in why.items() if reason is None]
    broken = {f: reason for f, reason in why.items() if reason not in (None, "not installed")}
    if broken:  # installed but broken: say so loudly, not as a missing row
        for f, reason in broken.items(): print(f"cpu_bench: {f} {reason} (see bench/setup_peers.sh)", file=sys.stderr)
    skipped = [f"{f} ({'not installed' if why[f] == 'not installed' else 'broken'})" for f in why if f not in frameworks]
    print(f"# {platform.node()} {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s); {source}; train {len(xt)}, valid {len(xv)}, bs {a.bs}, "
          f"{a.epochs} epoch(s), {a.reps} repetition(s), {a.clock} clock" + (f"; left out: {', '.join(skipped)}" if skipped else ""))
    print("| model | framework | median s | min s | median ratio to hand | min ratio to hand | final accuracy |\n"
          "|---|---|---|---|---|---|---|")
    for model_name in a.models.split(","):
        times = {f: [] for f in frameworks}
        finals = {}
        for rep in range(a.reps):
            for f in frameworks:  # in turn, so slow drifts of a shared machine hit every framework alike
                torch.manual_seed(rep)
                model = MODELS[model_name]()
                g = torch.Generator().manual_seed(rep)
                train_dl = DataLoader(TensorDataset(xt, yt), batch_size=a.bs, shuffle=True, generator=g)
                valid_dl = DataLoader(TensorDataset(xv, yv), batch_size=a.bs * 2)
                t0 = clock()
                finals[f] = RUNNERS[f](model, train_dl, valid_dl, a.epochs, 1e-3)
                times[f].append(clock() - t0)
        base = median(times["hand"]) if "hand" in times else float("nan")
        base_min = min(times["hand"]) if "hand" in times else float("nan")
        for f in frameworks:
            acc = next((float(v) for k, v in (finals[f].items() if isinstance(finals[f], dict) else [])
                        if "acc" in k.lower()), None)
            if acc is None and isinstance(finals[f], (list, tuple)): acc = float(finals[f][-1])  # fastai: last metric
            print(f"| {model_name} | {f} | {median(times[f]):.3f} | {min(times[f]):.3f} | "
                  f"{median(times[f]) / base:.3f} | {min(times[f]) / base_min:.3f} | {acc if acc is None else round(acc, 4)} |", flush=True)


if __name__ == "__main__":
    main()
