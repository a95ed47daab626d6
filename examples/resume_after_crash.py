"""Kill a training process mid-epoch with SIGKILL, resume it from its checkpoints, and check the result is exact.

    python examples/resume_after_crash.py --n-train 6000

Three runs of the same fit, each in its own process: an uninterrupted one; one with CheckpointCB that stops at a
known point (epoch 1, a few batches after a checkpoint) and is killed there with SIGKILL, so nothing runs on the way
out; and one that continues from the newest checkpoint with `fit(..., resume_from=...)`. With
`set_seed(seed, deterministic=True)` on a CPU the resumed weights equal the uninterrupted ones bit for bit: exit
status 0 when they do, 1 when they do not.
"""
from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torchvision.transforms.functional as TF
from torch import nn

from AIsaac.all import (Accuracy, BasicTrainCB, Callback, CheckpointCB, DataLoaders, DeviceCB, MetricsCB,
                        OneCycleSchedulerCB, ProgressCB, Trainer, fashion_mnist_dataset_dict, get_model_conv, inplace,
                        latest_checkpoint, set_seed)

XMEAN, XSTD = 0.28, 0.35  # mean and std of the training pixels


@inplace
def normalize(b): b["image"] = [(TF.to_tensor(o) - XMEAN) / XSTD for o in b["image"]]


class StallCB(Callback):
    '''At training batch `at` (epoch, batch), before its backward pass, writes `marker` and waits to be killed'''

    def __init__(self, at: tuple[int, int], marker: Path): self.at, self.marker = at, marker

    def before_backward(self, trainer):
        if (trainer.epoch, trainer.batch_num) == self.at:
            # CheckpointCB writes in the background; a kill during a write leaves the one before it as the newest.
            # Here the crash comes once the write in flight is done, so the checkpoints left are known in advance.
            trainer.CheckpointCB.writer.wait()
            self.marker.write_text("stalled")
            time.sleep(300)  # the parent kills us long before this ends


def make_trainer(args: argparse.Namespace, seed: int) -> Trainer:
    set_seed(seed, deterministic=True)
    dsd = fashion_mnist_dataset_dict(n_train=args.n_train, n_test=args.n_test).with_transform(normalize)
    dls = DataLoaders.from_dataset_dict(dsd, args.bs, num_workers=args.num_workers)
    # OneCycleSchedulerCB has state (the schedule's position): the checkpoint carries it over.
    return Trainer(dls, nn.CrossEntropyLoss(), torch.optim.AdamW, get_model_conv(norm=nn.BatchNorm2d),
                   [DeviceCB("cpu"), BasicTrainCB(), MetricsCB(Accuracy=Accuracy()), ProgressCB(),
                    OneCycleSchedulerCB()])


def checkpoint_every(trainer: Trainer) -> int: return max(len(trainer.dls.train) // 4, 1)


def child(args: argparse.Namespace) -> None:
    """One of the three runs (args.role), in this process."""
    work = Path(args.workdir)
    if args.role == "full":
        trainer = make_trainer(args, seed=42)
        trainer.fit(args.epochs, lr=args.lr)
    elif args.role == "crash":
        trainer = make_trainer(args, seed=42)
        every = checkpoint_every(trainer)
        # Two batches after the second checkpoint of epoch 1: the work since that checkpoint is lost.
        stall = StallCB((1, 2 * every + 1), work / "stalled")
        trainer.fit(args.epochs, lr=args.lr, callbacks=[CheckpointCB(work / "ckpt", every_n_batches=every), stall])
        raise SystemExit("the crash run was not killed")
    else:
        trainer = make_trainer(args, seed=0)  # another seed: all that matters must come from the checkpoint
        trainer.fit(args.epochs, lr=args.lr, resume_from=latest_checkpoint(work / "ckpt"),
                    callbacks=[CheckpointCB(work / "ckpt", every_n_batches=checkpoint_every(trainer))])
    torch.save(trainer.model.state_dict(), work / f"{args.role}.pt")


def run(args: argparse.Namespace, role: str, work: Path, wait: bool = True) -> subprocess.Popen:
    cmd = [sys.executable, __file__, "--role", role, "--workdir", str(work), "--epochs", str(args.epochs),
           "--lr", str(args.lr), "--bs", str(args.bs), "--num-workers", str(args.num_workers)]
    for flag, n in (("--n-train", args.n_train), ("--n-test", args.n_test)):
        if n is not None: cmd += [flag, str(n)]
    print(f"--- {role} run", flush=True)
    proc = subprocess.Popen(cmd)
    if wait and proc.wait() != 0: raise SystemExit(f"the {role} run failed (exit status {proc.returncode})")
    return proc


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=3, help="at least 2: the crash is in epoch 1")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--bs", type=int, default=64, help="batch size")
    p.add_argument("--num-workers", type=int, default=0, help="DataLoader worker processes")
    p.add_argument("--n-train", type=int, default=None, help="train on the first N images only (default: all 60000)")
    p.add_argument("--n-test", type=int, default=None, help="validate on the first N test images (default: all 10000)")
    p.add_argument("--workdir", default=None, help="folder for checkpoints and weights (default: a temporary one)")
    p.add_argument("--role", choices=["full", "crash", "resume"], default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.epochs < 2: p.error("--epochs must be at least 2: the crash happens in epoch 1")
    if args.role is not None:
        child(args)
        return 0

    with tempfile.TemporaryDirectory(prefix="aisaac-resume-") as tmp:
        work = Path(args.workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        run(args, "full", work)
        crash = run(args, "crash", work, wait=False)
        try:
            while not (work / "stalled").exists():
                if crash.poll() is not None: raise SystemExit(f"the crash run ended (status {crash.returncode}) "
                                                              f"before reaching the point where it is killed")
                time.sleep(0.05)
            crash.send_signal(signal.SIGKILL)  # no cleanup, no checkpoint on the way out: as a power cut would
            crash.wait()
        finally:
            if crash.poll() is None: crash.kill()
        names = sorted(f.name for f in (work / "ckpt").iterdir())
        print(f"killed with SIGKILL in epoch 1; checkpoints left: {', '.join(names)}")
        print(f"resuming from {latest_checkpoint(work / 'ckpt').name}", flush=True)
        run(args, "resume", work)
        full = torch.load(work / "full.pt", weights_only=True)
        resumed = torch.load(work / "resume.pt", weights_only=True)
        different = [k for k in full if not torch.equal(full[k], resumed[k])]
    if different:
        print(f"the resumed weights differ from the uninterrupted run's in {len(different)} tensors: "
              f"{', '.join(different[:5])}")
        return 1
    print(f"the resumed run's final weights are bit-identical to the uninterrupted run's ({len(full)} tensors)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
