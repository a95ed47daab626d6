"""A model too big for one process: built on the meta device, sharded with `fully_shard` (FSDP2), materialized shard
by shard, trained under AccelerateCB with sharded checkpoints (each process writes its part), then made one plain
state dict for inference.

    torchrun --nproc_per_node 2 examples/train_sharded_meta.py --cpu --checkpoint ckpt    # two CPU processes (gloo)
    torchrun --nproc_per_node 8 examples/train_sharded_meta.py --checkpoint ckpt          # eight GPUs
    python examples/train_sharded_meta.py --cpu --checkpoint ckpt                       # one process: resumes the same
    aisaac consolidate ckpt model.pt        # afterwards, in one process: the newest checkpoint as a plain state dict

Run it again with the same --checkpoint to continue from the newest checkpoint, on as many processes or another
number. Options: --epochs 2 --width 1024 --depth 8 --bs 32 --lr 1e-3. The data is random (a regression of a fixed
random map), so the script runs anywhere.
"""
import argparse
import os

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.distributed.fsdp import fully_shard
from torch.utils.data import DataLoader, TensorDataset

from AIsaac.all import (AccelerateCB, BasicTrainCB, CheckpointCB, DataLoaders, MetricsCB, Trainer, materialize,
                        set_seed)
from AIsaac.runtime.checkpoint_file import checkpoint_files


class Block(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.norm, self.fc1, self.fc2 = nn.LayerNorm(width), nn.Linear(width, 4 * width), nn.Linear(4 * width, width)

    def forward(self, x): return x + self.fc2(F.gelu(self.fc1(self.norm(x))))


class Net(nn.Module):
    def __init__(self, width: int, depth: int):
        super().__init__()
        self.blocks = nn.ModuleList(Block(width) for _ in range(depth))
        self.head = nn.Linear(width, width)

    def forward(self, x):
        for block in self.blocks: x = block(x)
        return self.head(x)


def init(module: nn.Module) -> None:
    """The model's own init (what its constructor would have done), run on each process's shards."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm): module.reset_parameters()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--width", type=int, default=1024)
    p.add_argument("--depth", type=int, default=8)
    p.add_argument("--bs", type=int, default=32, help="batch size of each process")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--cpu", action="store_true", help="train on CPUs (gloo) even where there are GPUs")
    p.add_argument("--checkpoint", default=None, help="checkpoint folder: saved to, and resumed from when it has one")
    args = p.parse_args()

    for k, v in {"RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29511"}.items():
        os.environ.setdefault(k, v)  # started without a launcher: one process
    if not dist.is_initialized():  # fully_shard needs the process group before AccelerateCB starts
        dist.init_process_group("gloo" if args.cpu or not torch.cuda.is_available() else "nccl")
    device = torch.device("cpu") if args.cpu or not torch.cuda.is_available() else \
        torch.device("cuda", dist.get_rank() % torch.cuda.device_count())
    set_seed(0)
    g = torch.Generator().manual_seed(0)
    target = torch.randn(args.width, args.width, generator=g) / args.width ** 0.5
    x = torch.randn(2048, args.width, generator=g)
    dls = DataLoaders(DataLoader(TensorDataset(x[:1792], x[:1792] @ target), batch_size=args.bs, shuffle=True),
                      DataLoader(TensorDataset(x[1792:], x[1792:] @ target), batch_size=args.bs))

    with torch.device("meta"): model = Net(args.width, args.depth)  # no memory: shapes only
    for block in model.blocks: fully_shard(block)
    fully_shard(model)
    materialize(model, init, device=device)  # each process allocates and initializes its own shards only
    n = sum(p.numel() for p in model.parameters())
    if dist.get_rank() == 0: print(f"{n / 1e6:.1f}M parameters, {n * 4 / dist.get_world_size() / 2**20:.0f} MB of "
                                   f"weights per process")

    cbs = [AccelerateCB(cpu=args.cpu), BasicTrainCB(), MetricsCB()]
    if args.checkpoint: cbs.append(CheckpointCB(args.checkpoint, every_n_batches=10))
    trainer = Trainer(dls, F.mse_loss, torch.optim.AdamW, model, cbs)
    resume = args.checkpoint if args.checkpoint and checkpoint_files(args.checkpoint) else None
    trainer.fit(args.epochs, lr=args.lr, resume_from=resume)
    if dist.get_rank() == 0:
        print(f"losses by epoch: {trainer.MetricsCB.losses_epoch}")
        if args.checkpoint: print(f"plain weights: aisaac consolidate {args.checkpoint} model.pt")
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
