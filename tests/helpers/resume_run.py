"""A small training run for the kill-and-resume test, run as a separate process (not a test module itself).

  python resume_run.py full OUT              train 3 epochs, save the final weights to OUT
  python resume_run.py crash CKPT MARKER     train with checkpoints in CKPT; at epoch 1, batch 6, write MARKER
                                             and hang until killed
  python resume_run.py preempt CKPT MARKER   as crash, but waits for a preemption signal (SIGTERM) instead of a kill
  python resume_run.py resume CKPT OUT       continue from the newest checkpoint in CKPT, save the final weights

Everything random is exercised: shuffling, dropout, and a data transform that draws from torch, NumPy and Python.
"""
import random
import sys
import time

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from AIsaac.all import BasicTrainCB, Callback, CheckpointCB, DataLoaders, MetricsCB, Trainer, set_seed

N_EPOCHS, BS, N_TRAIN = 3, 4, 48  # 12 training batches per epoch


class NoisyData(Dataset):
    def __init__(self, n: int):
        g = torch.Generator().manual_seed(0)
        self.x, self.y = torch.randn(n, 6, generator=g), torch.randint(0, 3, (n,), generator=g)

    def __len__(self): return len(self.x)

    def __getitem__(self, i):
        noise = 0.01 * torch.randn(6) + 0.01 * float(np.random.randn()) + 0.01 * random.random()
        return self.x[i] + noise, self.y[i]


class OneCycleCB(Callback):
    """A scheduler with state, as a callback: its state must be saved and restored too."""

    def before_fit(self, trainer):
        self.sched = torch.optim.lr_scheduler.OneCycleLR(trainer.opt, max_lr=trainer.lr,
                                                         total_steps=trainer.n_epochs * len(trainer.dls.train))

    def after_batch(self, trainer):
        if trainer.training: self.sched.step()

    def state_dict(self): return self.sched.state_dict()
    def load_state_dict(self, state): self.sched.load_state_dict(state)


class HangCB(Callback):
    """Stands for a crash: at `at` (epoch, batch) writes `marker` and waits to be killed."""

    def __init__(self, at, marker): self.at, self.marker = at, marker

    def after_batch(self, trainer):
        if (trainer.epoch, trainer.batch_num) == self.at:
            # CheckpointCB writes in the background: its last checkpoint is on disk before the kill.
            if (cb := trainer.named_callbacks.get("CheckpointCB")) is not None: cb.writer.wait()
            with open(self.marker, "w") as f: f.write("ready")
            time.sleep(120)


class WaitForSignalCB(Callback):
    """At `at` (epoch, batch) writes `marker` and waits until the trainer has received a preemption signal."""

    def __init__(self, at, marker): self.at, self.marker = at, marker

    def after_batch(self, trainer):
        if (trainer.epoch, trainer.batch_num) == self.at:
            with open(self.marker, "w") as f: f.write("ready")
            deadline = time.monotonic() + 120
            while trainer.preempted is None and time.monotonic() < deadline: time.sleep(0.02)


def make_trainer(seed: int) -> Trainer:
    set_seed(seed, deterministic=True)
    dls = DataLoaders(DataLoader(NoisyData(N_TRAIN), batch_size=BS, shuffle=True),
                      DataLoader(NoisyData(16), batch_size=8))
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 3))
    return Trainer(dls, nn.CrossEntropyLoss(), torch.optim.AdamW, model, [BasicTrainCB(), MetricsCB(), OneCycleCB()])


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    if mode == "full":
        trainer = make_trainer(0)
        trainer.fit(N_EPOCHS, lr=1e-2)
        torch.save(trainer.model.state_dict(), args[0])
    elif mode == "crash":
        trainer = make_trainer(0)
        trainer.fit(N_EPOCHS, lr=1e-2, callbacks=[CheckpointCB(args[0], every_n_batches=4, keep=2),
                                                  HangCB((1, 6), args[1])])
    elif mode == "preempt":
        trainer = make_trainer(0)
        trainer.fit(N_EPOCHS, lr=1e-2, callbacks=[CheckpointCB(args[0], every_n_batches=4, keep=2),
                                                  WaitForSignalCB((1, 6), args[1])])
    elif mode == "resume":
        trainer = make_trainer(123)  # another seed: everything that matters must come from the checkpoint
        trainer.fit(N_EPOCHS, lr=1e-2, callbacks=[CheckpointCB(args[0], every_n_batches=4, keep=2)],
                    resume_from=args[0])
        torch.save(trainer.model.state_dict(), args[1])
    else:
        raise SystemExit(f"unknown mode {mode!r}")
