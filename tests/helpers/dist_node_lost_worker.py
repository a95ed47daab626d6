"""One process of the lost-node test (tests/callbacks/test_accelerate_node_lost.py): a long fit under a two-node
torchrun launch. At epoch 1, batch 2 each process writes its process id to OUT/ready<RANK> (torchrun starts its worker
in a session of its own: killing the launcher's process group leaves the worker running); process 1 then stays in
that batch, so process 0 is waiting for it in the next batch's stop vote when the test kills or freezes node 1.
Usage: python dist_node_lost_worker.py OUT [TIMEOUT] (started by torchrun; TIMEOUT: AccelerateCB's, in seconds)."""
import os
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from AIsaac.all import AccelerateCB, BasicTrainCB, Callback, DataLoaders, MetricsCB, Trainer, set_seed

READY_AT = (1, 2)  # (epoch, batch)


class Ready(Callback):
    def __init__(self, path): self.path = path

    def after_batch(self, trainer):
        if not trainer.training or (trainer.epoch, trainer.batch_num) != READY_AT: return
        self.path.write_text(str(os.getpid()))
        if trainer.process_index == 1: time.sleep(600)  # killed or frozen here


if __name__ == "__main__":
    out = Path(sys.argv[1])
    kwargs = {"timeout": float(sys.argv[2])} if len(sys.argv) > 2 else {}
    set_seed(0)
    x = torch.randn(64, 4)
    dls = DataLoaders(DataLoader(TensorDataset(x, (x[:, 0] > 0).long()), batch_size=8, shuffle=True),
                      DataLoader(TensorDataset(x, (x[:, 0] > 0).long()), batch_size=8))
    trainer = Trainer(dls, F.cross_entropy, torch.optim.SGD, nn.Linear(4, 2),
                      [AccelerateCB(cpu=True, **kwargs), BasicTrainCB(), MetricsCB(),
                       Ready(out / f"ready{os.environ['RANK']}")])
    trainer.fit(10_000, lr=0.1)
