"""The seed tutorial's work written by hand, without AIsaac: the same imports, seeds, dataset, transform, model,
optimiser and loss; two 3-epoch fits (train, then validation with loss and accuracy), then the three-batch fit the
acceptance script traces. `bench/seed_bench.py` times it next to the tutorial itself.

  python bench/seed_hand.py --acceptance DIR                  # num_workers=0: the plain loop
  python bench/seed_hand.py --acceptance DIR --workers 1 --threads 1 --persistent   # AIsaac's plan on 2 cores, by hand
"""
import argparse
import os
import random
import sys

ap = argparse.ArgumentParser()
ap.add_argument("--acceptance", required=True, help="folder with the acceptance script's fashion_mnist.py")
ap.add_argument("--workers", type=int, default=0)
ap.add_argument("--threads", type=int, default=0, help="torch threads during the fits (0: torch's default)")
ap.add_argument("--persistent", action="store_true", help="persistent_workers=True")
a = ap.parse_args()
sys.path.insert(0, a.acceptance)

import datasets, fashion_mnist  # noqa: E402

N_TRAIN = int(os.environ.get("ACCEPT_N_TRAIN", "0")) or None

import fastcore.all as fc  # noqa: E402,F401  (the tutorial's imports, so both pay the same start-up)
import matplotlib.pyplot as plt, matplotlib as mpl  # noqa: E402,F401,E401
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, default_collate  # noqa: E402
from torcheval.metrics import Mean, MulticlassAccuracy  # noqa: E402
import torchvision.transforms.functional as TF  # noqa: E402

torch.manual_seed(1)
random.seed(42), np.random.seed(42), torch.manual_seed(42)
xmean, xstd = 0.28, 0.35


def transformi(b):
    b['image'] = [(TF.to_tensor(o) - xmean) / xstd for o in b['image']]
    return b


def collate(items):
    b = default_collate(items)
    return b['image'], b['label']


dd = fashion_mnist.dataset_dict(n_train=N_TRAIN).with_transform(transformi)
kw = dict(collate_fn=collate, num_workers=a.workers, persistent_workers=a.persistent and a.workers > 0)
train_dl = DataLoader(dd['train'], batch_size=64, shuffle=True, **kw)
valid_dl = DataLoader(dd['test'], batch_size=128, shuffle=False, **kw)


def conv(ni, nf, act=True):
    layers = [nn.Conv2d(ni, nf, kernel_size=3, stride=2, padding=1)]
    return nn.Sequential(*layers, nn.ReLU()) if act else nn.Sequential(*layers)


def model_conv():
    nfs = [1, 8, 16, 32, 64]
    return nn.Sequential(*[conv(nfs[i], nfs[i + 1]) for i in range(4)], conv(64, 10, act=False), nn.Flatten())


def fit(model, epochs=3, lr=1e-3, stop_after=None):
    opt, loss_func = torch.optim.Adam(model.parameters(), lr), nn.CrossEntropyLoss()
    for epoch in range(epochs):
        model.train()
        train_loss = Mean()
        for i, (xb, yb) in enumerate(train_dl):
            loss = loss_func(model(xb), yb)
            loss.backward()
            opt.step()
            opt.zero_grad()
            train_loss.update(loss.detach(), weight=len(yb))
            if stop_after is not None and i + 1 == stop_after: return
        model.eval()
        valid_loss, acc = Mean(), MulticlassAccuracy()
        with torch.no_grad():
            for xb, yb in valid_dl:
                preds = model(xb)
                valid_loss.update(loss_func(preds, yb), weight=len(yb))
                acc.update(preds, yb)
        print(f"{epoch} {float(train_loss.compute()):.6f} {float(valid_loss.compute()):.6f} {float(acc.compute()):.4f}",
              flush=True)


if a.threads: torch.set_num_threads(a.threads)
print("  train valid Accuracy")
fit(model_conv())
print("  train valid Accuracy")
fit(model_conv())
fit(model_conv(), epochs=1, stop_after=3)  # the acceptance script's traced fit: three batches, then CancelFitException
