"""The main job: the tutorial's model trained with `CoreCBs` on local data, with its plots saved."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .runtime.metric_objects import Accuracy
from .callbacks.presets import CoreCBs
from .data.fashion_mnist import fashion_mnist_dataset_dict, fashion_mnist_folder, hf_modules
from .data.loaders import DataLoaders
from .data.transforms import inplace
from .models.conv import get_model_conv
from .display.plots import plot_losses
from .runtime.args import whole_number
from .runtime.optimizers import check_lr
from .runtime.rng import set_seed
from .trainer import Trainer

XMEAN, XSTD = 0.28, 0.35  # the tutorial's normalisation


@inplace
def normalize_images(b):
    """PIL images to normalised 1x28x28 float tensors (what torchvision's to_tensor does, without torchvision)."""
    b['image'] = [(torch.from_numpy(np.asarray(o, dtype=np.float32) / 255.).unsqueeze(0) - XMEAN) / XSTD
                  for o in b['image']]


def load_demo_data(data: str | None = None, n_train: int | None = None, n_test: int | None = None):
    """(DatasetDict, description): Fashion-MNIST when its files are found, else scikit-learn's digits; `n_train` and
    `n_test` keep the first rows of each split."""
    folder = fashion_mnist_folder(data)
    if folder is not None and (not data or Path(data).resolve() == folder.resolve()):
        return fashion_mnist_dataset_dict(folder, n_train=n_train, n_test=n_test), f"Fashion-MNIST from {folder}"
    if data: raise FileNotFoundError(f"No Fashion-MNIST idx files in {data}: it needs train-images-idx3-ubyte.gz, "
                                     f"train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz.")
    from .data.digits import digits_dataset_dict
    dd = digits_dataset_dict()
    for split, n in (("train", n_train), ("test", n_test)):
        if n is not None: dd[split] = dd[split].select(range(min(n, len(dd[split]))))
    return dd, ("scikit-learn's handwritten digits (Fashion-MNIST not found: apt-get install "
                                   "dataset-fashion-mnist, or pass --data DIR)")


def run_demo(data: str | None = None, out: str = "aisaac_out", epochs: int = 3, batch_size: int = 64,
             lr: float = 1e-3, n_train: int | None = None, num_workers: int = 0, seed: int = 42,
             n_test: int | None = None) -> Trainer:
    """Train `get_model_conv()` with CoreCBs, print the epoch table, save loss and activation plots under `out`."""
    # The arguments and the extra are checked before the data loads (reading Fashion-MNIST takes seconds).
    whole_number("epochs", epochs, owner="run_demo", what="epochs to train")
    whole_number("batch_size", batch_size, owner="run_demo")
    whole_number("n_train", n_train, owner="run_demo", what="training images kept", none="all of them")
    whole_number("n_test", n_test, owner="run_demo", what="test images kept", none="all of them")
    whole_number("num_workers", num_workers, minimum=0, owner="run_demo", what="DataLoader worker processes")
    lr = check_lr(lr)
    hf_modules("aisaac demo", extra="demo")
    import matplotlib
    if not os.environ.get("MPLBACKEND"): matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    set_seed(seed)
    dd, what = load_demo_data(data, n_train, n_test)
    print(f"Data: {what}; {len(dd['train'])} training and {len(dd['test'])} test images.")
    dls = DataLoaders.from_dataset_dict(dd.with_transform(normalize_images), batch_size, num_workers=num_workers)
    trainer = Trainer(dls, nn.CrossEntropyLoss(), torch.optim.Adam, get_model_conv(),
                      callbacks=[CoreCBs(Accuracy=Accuracy())])
    trainer.fit(epochs, lr=lr)
    outdir = Path(out)
    outdir.mkdir(parents=True, exist_ok=True)
    fig = plot_losses(trainer)
    fig.savefig(outdir / "losses.png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    for name in ("color_dim", "plot_stats", "dead_chart"):
        fig = getattr(trainer.ActivationStatsCB, name)()
        fig.savefig(outdir / f"{name}.png", dpi=80, bbox_inches="tight")
        plt.close(fig)
    print(f"Plots written to {outdir.resolve()}: losses.png, color_dim.png, plot_stats.png, dead_chart.png")
    return trainer
