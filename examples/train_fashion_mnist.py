"""Train the tutorial's conv net on Fashion-MNIST from the command line.

    python examples/train_fashion_mnist.py --epochs 3 --n-train 6000
"""
from __future__ import annotations

import argparse

import torch
import torchvision.transforms.functional as TF
from torch import nn

from AIsaac.all import Accuracy, CoreCBs, DataLoaders, Trainer, fashion_mnist_dataset_dict, get_model_conv, inplace, set_seed

XMEAN, XSTD = 0.28, 0.35  # mean and std of the training pixels


@inplace
def normalize(b): b["image"] = [(TF.to_tensor(o) - XMEAN) / XSTD for o in b["image"]]


def main(argv: list[str] | None = None) -> Trainer:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--bs", type=int, default=128, help="batch size")
    p.add_argument("--n-train", type=int, default=None, help="train on the first N images only (default: all 60000)")
    p.add_argument("--n-test", type=int, default=None, help="validate on the first N test images (default: all 10000)")
    p.add_argument("--data", default=None, help="folder with the idx files (default: $FASHION_MNIST_DIR or the "
                                                "dataset-fashion-mnist package's folder)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    p.add_argument("--save", default=None, help="write the trained model's state_dict to this file")
    args = p.parse_args(argv)

    set_seed(args.seed)
    dsd = fashion_mnist_dataset_dict(args.data, n_train=args.n_train, n_test=args.n_test).with_transform(normalize)
    dls = DataLoaders.from_dataset_dict(dsd, args.bs, num_workers=args.workers)
    trainer = Trainer(dls, nn.CrossEntropyLoss(), torch.optim.AdamW, get_model_conv(norm=nn.BatchNorm2d),
                      callbacks=[CoreCBs(Accuracy=Accuracy(), module_filter=lambda m: isinstance(m, nn.ReLU))])
    trainer.fit(args.epochs, lr=args.lr)
    if args.save: torch.save(trainer.model.state_dict(), args.save)
    return trainer


if __name__ == "__main__":
    main()
