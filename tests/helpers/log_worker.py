"""One process of the two-process `trainer.log` test (tests/test_trainer_log.py starts two of these, and runs
`fit_logging` itself in one process). Usage: python log_worker.py OUT (with RANK, WORLD_SIZE, MASTER_ADDR, ... set)."""
import json
import os
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from AIsaac.all import AccelerateCB, BasicTrainCB, Callback, DataLoaders, MetricsCB, Trainer

N_TRAIN, N_VALID, BS = 32, 24, 4  # each process gets whole batches: no padded duplicates


def data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N_TRAIN + N_VALID, 4, generator=g)
    y = (x[:, 0] > 0).long()
    return DataLoaders(DataLoader(TensorDataset(x[:N_TRAIN], y[:N_TRAIN]), batch_size=BS, shuffle=True),
                       DataLoader(TensorDataset(x[N_TRAIN:], y[N_TRAIN:]), batch_size=BS))


class LogCB(Callback):
    '''Logs the mean of each batch's inputs (each process its own) and of its squared inputs'''

    def predict(self, trainer):
        trainer.log("xmean", trainer.xb[0].mean())
        trainer.log("x2", (trainer.xb[0] ** 2).mean())
        # LOG_MISMATCH=train|valid: process 1 also logs a name process 0 does not, in that phase.
        if os.environ.get("LOG_MISMATCH") == ("train" if trainer.training else "valid") and trainer.process_index == 1:
            trainer.log("only_here", 1.0)


def fit_logging(callbacks=()):
    torch.manual_seed(0)
    trainer = Trainer(data(), F.cross_entropy, torch.optim.SGD, nn.Linear(4, 2),
                      [*callbacks, BasicTrainCB(), LogCB(), MetricsCB()])
    trainer.fit(2, lr=0.1)
    return trainer.MetricsCB.metrics_epoch


if __name__ == "__main__":
    out, rank = Path(sys.argv[1]), int(os.environ["RANK"])
    try: result = fit_logging([AccelerateCB(cpu=True)])
    except Exception as e:  # the mismatch test reads what each process was told
        (out / f"rank{rank}.err").write_text(f"{type(e).__name__}: {e}")
        raise
    (out / f"rank{rank}.json").write_text(json.dumps(result))
