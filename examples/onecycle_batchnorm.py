"""Issue 3's yardstick: the tutorial's conv net with BatchNorm, one-cycle at lr 1e-2, batch size 256, 5 epochs.

    python examples/onecycle_batchnorm.py            # full Fashion-MNIST (needs the local idx files)
    python examples/onecycle_batchnorm.py --n-train 6000 --epochs 1
"""
import argparse

import torch
from torch import nn

from AIsaac.all import (Accuracy, CoreCBs, DataLoaders, OneCycleSchedulerCB, Trainer, get_model_conv, set_seed)
from AIsaac.data.fashion_mnist import fashion_mnist_dataset_dict
from AIsaac.demo import normalize_images

p = argparse.ArgumentParser()
p.add_argument("--epochs", type=int, default=5)
p.add_argument("--n-train", type=int, default=None)
p.add_argument("--data", default=None)
args = p.parse_args()

set_seed(42)
dd = fashion_mnist_dataset_dict(args.data, n_train=args.n_train).with_transform(normalize_images)
dls = DataLoaders.from_dataset_dict(dd, 256, num_workers=2)
trainer = Trainer(dls, nn.CrossEntropyLoss(), torch.optim.AdamW, get_model_conv(norm=nn.BatchNorm2d),
                  callbacks=[CoreCBs(Accuracy=Accuracy())])
trainer.fit(args.epochs, lr=1e-2, callbacks=[OneCycleSchedulerCB()])
print(f"final accuracy: {trainer.MetricsCB.metrics_epoch[-1]['Accuracy']:.4f}")
