"""Write a callback and add it to a fit: stop early when the validation loss stops improving.

    python examples/custom_callback.py --n-train 6000
"""
from __future__ import annotations

import argparse

import torch
import torchvision.transforms.functional as TF
from torch import nn

from AIsaac.all import (Accuracy, Callback, CancelFitException, CoreCBs, DataLoaders, Trainer,
                        fashion_mnist_dataset_dict, get_model_conv, inplace, set_seed)


class EarlyStopCB(Callback):
    '''Stops the fit when the validation loss has not improved for `patience` epochs; keeps the best weights.'''

    order = 60  # after MetricsCB (0) has the epoch's losses and ProgressCB (50) has shown them

    def __init__(self, patience: int = 2): self.patience = patience

    def before_fit(self, trainer): self.best, self.best_epoch, self.best_state = float("inf"), -1, None

    def cleanup_epoch(self, trainer):
        if trainer.training: return
        valid = trainer.MetricsCB.losses_epoch[-1]["valid"]
        if valid < self.best:
            self.best, self.best_epoch = valid, trainer.epoch
            self.best_state = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
        elif trainer.epoch - self.best_epoch >= self.patience:
            print(f"no improvement for {self.patience} epochs; stopping after epoch {trainer.epoch}")
            raise CancelFitException()

    def cleanup_fit(self, trainer):
        if self.best_state is not None: trainer.model.load_state_dict(self.best_state)


@inplace
def normalize(b): b["image"] = [(TF.to_tensor(o) - 0.28) / 0.35 for o in b["image"]]


def main(argv: list[str] | None = None) -> Trainer:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--patience", type=int, default=2)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--n-train", type=int, default=None, help="train on the first N images only (default: all)")
    p.add_argument("--n-test", type=int, default=None, help="validate on the first N test images (default: all)")
    args = p.parse_args(argv)

    set_seed(42)
    dsd = fashion_mnist_dataset_dict(n_train=args.n_train, n_test=args.n_test).with_transform(normalize)
    trainer = Trainer(DataLoaders.from_dataset_dict(dsd, 128), nn.CrossEntropyLoss(), torch.optim.AdamW,
                      get_model_conv(norm=nn.BatchNorm2d), callbacks=[CoreCBs(Accuracy=Accuracy())])
    # Callbacks given to fit are used for this fit only.
    stop = EarlyStopCB(args.patience)
    trainer.fit(args.epochs, lr=args.lr, callbacks=[stop])
    print(f"best valid loss {stop.best:.4f} at epoch {stop.best_epoch}; the model has its weights")
    return trainer


if __name__ == "__main__":
    main()
