"""One process of the two-process AccelerateCB test (tests/callbacks/test_accelerate.py starts two of these).

Runs several fits in the same process group and writes what it saw to OUT/rank<r>.json and its weights to
OUT/rank<r>_<scenario>.pt. Usage: python accelerate_worker.py OUT (with RANK, WORLD_SIZE, MASTER_ADDR, ... set).
"""
import json
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from AIsaac.callbacks.accelerate import AccelerateCB
from AIsaac.callbacks.basic_train import BasicTrainCB
from AIsaac.callbacks.device import DeviceCB
from AIsaac.callbacks.metrics import MetricsCB
from AIsaac.callbacks.progress import ProgressCB
from AIsaac.data.loaders import DataLoaders
from AIsaac.exceptions import CancelEpochException, CancelFitException
from AIsaac.callbacks.metrics import Accuracy
from AIsaac.trainer import Trainer

N_TRAIN, N_VALID, BS = 32, 13, 4  # 13 validation samples: the sampler pads the last batch with duplicates


def data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N_TRAIN + N_VALID, 4, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
    idx = torch.arange(len(x))
    tr, va = slice(0, N_TRAIN), slice(N_TRAIN, None)
    return DataLoaders(DataLoader(TensorDataset(x[tr], y[tr], idx[tr]), batch_size=BS, shuffle=True),
                       DataLoader(TensorDataset(x[va], y[va], idx[va]), batch_size=BS))


class RecordCB:
    '''Records the sample indices each phase sees, the optimizer steps, and where the fit ended'''
    order = 10  # after AccelerateCB has gathered the validation batch
    observes = ('step',)  # counts the steps BasicTrainCB does

    def __init__(self, rank, fail=None): self.rank, self.fail, self.seen, self.steps = rank, fail, [], 0

    def before_epoch(self, t):
        self.seen.append({'training': t.training, 'idx': []})
        if self.fail and self.fail[:3] == ('before_epoch', t.epoch, t.training): raise self.fail[3]

    def step(self, t): self.steps += 1

    def after_batch(self, t):
        self.seen[-1]['idx'] += t.yb[1].tolist()  # the targets are (y, idx), gathered in validation
        if self.fail and self.fail[:3] == (t.epoch, t.batch_num, t.training): raise self.fail[3]

    def cleanup_fit(self, t): self.end = (t.epoch, t.training)


def loss_func(preds, y, idx):
    '''The batches are (x, y, idx): two targets, of which the loss reads the first'''
    return F.cross_entropy(preds, y)


def fit(acc, rank, out, name, fail_on_rank1=None, epochs=2):
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    rec = RecordCB(rank, fail_on_rank1 if rank == 1 else None)
    metrics = MetricsCB(accuracy=(Accuracy(), lambda preds, y, idx: (preds, y)))
    trainer = Trainer(data(), loss_func, torch.optim.SGD, model,
                      [acc, DeviceCB('cpu'), BasicTrainCB(), metrics, ProgressCB(bars=False), rec])
    error = None
    try: trainer.fit(epochs, lr=0.3)
    except Exception as e: error = f"{type(e).__name__}: {e}"
    torch.save(model.state_dict(), out / f"rank{rank}_{name}.pt")
    return {'error': error, 'seen': rec.seen, 'steps': rec.steps, 'end': rec.end,
            'losses': metrics.losses_epoch, 'losses_batch': list(metrics.losses_batch), 'metrics': metrics.metrics_epoch,
            'restored': trainer.model is model and isinstance(trainer.opt, torch.optim.SGD),
            'is_main_process': trainer.is_main_process}


if __name__ == "__main__":
    out, rank = Path(sys.argv[1]), int(os.environ['RANK'])
    acc = AccelerateCB(cpu=True)  # one callback, so one accelerator, for every fit of this process
    report = {
        'train': fit(acc, rank, out, 'train'),
        # rank 1 alone raises: after the step of training batch 3 / before validating epoch 0 / in validation
        'cancel_fit': fit(acc, rank, out, 'cancel_fit', (0, 3, True, CancelFitException())),
        'cancel_epoch': fit(acc, rank, out, 'cancel_epoch', ('before_epoch', 0, False, CancelEpochException())),
        'error': fit(acc, rank, out, 'error', (1, 0, False, ValueError("boom on rank 1"))),
    }
    (out / f"rank{rank}.json").write_text(json.dumps(report))
    dist.barrier()
