"""What the benchmarks share: Fashion-MNIST (or synthetic data of its shape), the models, the peers' import path."""
from __future__ import annotations

import gzip
import os
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))  # this checkout's AIsaac, not an installed one
# Peer frameworks installed by setup_peers.sh; appended so the venv's own packages (torch above all) win.
if (HERE / ".peers").is_dir(): sys.path.append(str(HERE / ".peers"))

DEFAULT_DATA = os.environ.get("FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist")
XMEAN, XSTD = 0.28, 0.35  # the tutorial's normalisation


def read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f: data = f.read()
    ndim = data[3]
    shape = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def fashion_mnist(folder: str | None, n_train: int | None = None, n_valid: int | None = None):
    """((x_train, y_train), (x_valid, y_valid), source): normalised float images (N, 1, 28, 28) and int64 labels.

    Reads the four idx .gz files from `folder` when they are there; otherwise makes synthetic data of the same shape
    (class prototypes plus noise, so a model can learn it) and says so in `source`.
    """
    folder = Path(folder) if folder else None
    if folder and (folder / "train-images-idx3-ubyte.gz").exists():
        out = []
        for stem, n in (("train", n_train), ("t10k", n_valid)):
            x = read_idx(folder / f"{stem}-images-idx3-ubyte.gz")[:n]
            y = read_idx(folder / f"{stem}-labels-idx1-ubyte.gz")[:n].astype(np.int64)
            x = (torch.from_numpy(x.copy()).float().div_(255).sub_(XMEAN).div_(XSTD)).unsqueeze(1)
            out.append((x, torch.from_numpy(y)))
        return out[0], out[1], f"Fashion-MNIST from {folder}"
    g = torch.Generator().manual_seed(0)
    protos = torch.randn(10, 1, 28, 28, generator=g)
    def make(n):
        y = torch.randint(0, 10, (n,), generator=g)
        return protos[y] + 2.0 * torch.randn(n, 1, 28, 28, generator=g), y
    return make(n_train or 60000), make(n_valid or 10000), "SYNTHETIC data of Fashion-MNIST shape (no idx files found)"


def linear_model() -> nn.Module: return nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10))


def conv_model() -> nn.Module:
    from AIsaac.models.conv import get_model_conv
    return get_model_conv()


MODELS = {"linear": linear_model, "conv": conv_model}


def hand_fit(model, train_dl, valid_dl, epochs: int, lr: float, device, opt_func=torch.optim.Adam):
    """The hand-written loop: the tutorial's step, mean losses and accuracy read from the device once per epoch."""
    model.to(device)
    opt = opt_func(model.parameters(), lr)
    loss_func = nn.CrossEntropyLoss()
    nb = device.type != "cpu"
    for _ in range(epochs):
        model.train()
        tot, n = torch.zeros((), device=device), 0
        for xb, yb in train_dl:
            xb, yb = xb.to(device, non_blocking=nb), yb.to(device, non_blocking=nb)
            loss = loss_func(model(xb), yb)
            loss.backward()
            opt.step()
            opt.zero_grad()
            tot += loss.detach() * len(yb)
            n += len(yb)
        model.eval()
        vtot, correct, vn = torch.zeros((), device=device), torch.zeros((), device=device, dtype=torch.long), 0
        with torch.no_grad():
            for xb, yb in valid_dl:
                xb, yb = xb.to(device, non_blocking=nb), yb.to(device, non_blocking=nb)
                preds = model(xb)
                vtot += loss_func(preds, yb) * len(yb)
                correct += (preds.argmax(-1) == yb).sum()
                vn += len(yb)
        log = {"train": (tot / n).item(), "valid": (vtot / vn).item(), "accuracy": correct.item() / vn}
    return log


def median(xs): return float(np.median(xs))
