"""Fashion-MNIST with AccelerateCB: the same script on one CPU, one GPU, several GPUs or several machines.

    python examples/train_distributed.py                                   # one process (CPU or the GPU)
    accelerate launch --num_processes 2 examples/train_distributed.py      # two processes (GPUs, or CPUs with --cpu)
    torchrun --nproc_per_node 2 examples/train_distributed.py              # the same, launched by torchrun
    sbatch --nodes 2 examples/slurm_train.sh                               # several machines under SLURM

Options: --epochs 2 --bs 256 --lr 3e-3 --mixed-precision no|fp16|bf16 --n-train 60000 --n-test 10000 --save model.pt
--checkpoint DIR (checkpoints every 50 batches and each epoch; a run started again continues from the newest).
The images are read from the idx .gz files in $FASHION_MNIST_DIR (default /usr/share/datasets/fashion-mnist).
"""
import argparse
import gzip
import os

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from AIsaac.all import (AccelerateCB, Accuracy, BasicTrainCB, CheckpointCB, DataLoaders, DeviceCB, MetricsCB,
                        ProgressCB, Trainer, get_model_conv, set_seed)
from AIsaac.runtime.checkpoint_file import checkpoint_files

FOLDER = os.environ.get("FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist")


def read_idx(path: str) -> np.ndarray:
    """An idx file (the MNIST format): magic with the number of dimensions, the sizes, then uint8 data."""
    with gzip.open(path, "rb") as f: data = f.read()
    ndim = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def split(stem: str, n: int | None) -> TensorDataset:
    x = torch.from_numpy(read_idx(f"{FOLDER}/{stem}-images-idx3-ubyte.gz")[:n].copy()).float().div(255)
    y = torch.from_numpy(read_idx(f"{FOLDER}/{stem}-labels-idx1-ubyte.gz")[:n].astype(np.int64))
    return TensorDataset((x[:, None] - 0.286) / 0.353, y)  # Fashion-MNIST's pixel mean and std


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--bs", type=int, default=256, help="batch size of each process")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--mixed-precision", default="no", choices=["no", "fp16", "bf16"])
    p.add_argument("--n-train", type=int, default=None, help="keep the first N training images (quick runs)")
    p.add_argument("--n-test", type=int, default=None, help="validate on the first N test images (quick runs)")
    p.add_argument("--save", default=None, help="write the trained weights here (from the main process only)")
    p.add_argument("--checkpoint", default=None, help="checkpoint folder: saved to, and resumed from when it has one")
    args = p.parse_args()

    set_seed(42)  # the same start on every process (DDP also copies rank 0's weights at the first fit)
    dls = DataLoaders(DataLoader(split("train", args.n_train), batch_size=args.bs, shuffle=True),
                      DataLoader(split("t10k", args.n_test), batch_size=args.bs * 2))
    model = get_model_conv()
    trainer = Trainer(dls, F.cross_entropy, torch.optim.AdamW, model,
                      [AccelerateCB(args.mixed_precision), DeviceCB(), BasicTrainCB(),
                       MetricsCB(accuracy=Accuracy()), ProgressCB()])
    resume = None
    if args.checkpoint:
        trainer.add_callbacks(CheckpointCB(args.checkpoint, every_n_batches=50))
        if checkpoint_files(args.checkpoint): resume = args.checkpoint  # a requeued job continues where it stopped
    # A requeued job may be given more epochs than the run it continues: that change is meant, so it is allowed.
    trainer.fit(args.epochs, lr=args.lr, resume_from=resume, allow_changes=("n_epochs",) if resume else ())
    if args.save and trainer.is_main_process: torch.save(model.state_dict(), args.save)


if __name__ == "__main__":
    main()
