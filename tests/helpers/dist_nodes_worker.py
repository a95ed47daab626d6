"""One process of the several-machines test (tests/callbacks/test_accelerate_nodes.py): a short fit under whatever
launch started it, writing OUT/rank<RANK>.json (epoch losses, accuracy, how the launch looked) and its weights; its
SaveBestCB, CSVLoggerCB and TensorBoardCB write OUT/best.pt, OUT/history.csv and OUT/tb (the main process only).
Usage: python dist_nodes_worker.py OUT (started by torchrun, or with RANK, WORLD_SIZE, ... set)."""
import json
import os
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from AIsaac.all import (AccelerateCB, Accuracy, BasicTrainCB, CSVLoggerCB, DataLoaders, MetricsCB, SaveBestCB,
                        TensorBoardCB, Trainer, set_seed)

if __name__ == "__main__":
    out = Path(sys.argv[1])
    set_seed(0)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(80, 4, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
    dls = DataLoaders(DataLoader(TensorDataset(x[:64], y[:64]), batch_size=8, shuffle=True),
                      DataLoader(TensorDataset(x[64:], y[64:]), batch_size=8))
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 3))
    metrics = MetricsCB(accuracy=Accuracy())
    # the file-writing callbacks: only the main process writes; SaveBestCB's decisions agree on every process
    writers = [SaveBestCB(path=out / "best.pt"), CSVLoggerCB(out / "history.csv"), TensorBoardCB(out / "tb")]
    trainer = Trainer(dls, F.cross_entropy, torch.optim.SGD, model,
                      [AccelerateCB(cpu=True), BasicTrainCB(), metrics, *writers])
    trainer.fit(3, lr=0.2)
    rank = int(os.environ["RANK"])
    torch.save(model.state_dict(), out / f"rank{rank}.pt")
    (out / f"rank{rank}.json").write_text(json.dumps({
        "losses": metrics.losses_epoch, "metrics": metrics.metrics_epoch, "num_processes": trainer.num_processes,
        "process_index": trainer.process_index, "group_rank": os.environ.get("GROUP_RANK"),
        "local_world_size": os.environ.get("LOCAL_WORLD_SIZE"), "best_epoch": writers[0].best_epoch}))
