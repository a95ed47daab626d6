"""Checks of resume and of the early errors on a CUDA GPU; run by hand on a machine with one (CI has none).

  PYTHONPATH=. python tests/helpers/gpu_resume_check.py

Prints one line per check; exits 1 if a check that must hold fails. Whether a resumed GPU run is bit-identical is
reported, not required (see docs/checkpoints.md).
"""
import sys
import tempfile
import warnings

import torch
from torch import nn
from torch.utils.data import DataLoader

from AIsaac.all import (BasicTrainCB, Callback, CallbackError, CheckpointCB, DataLoaders, DeviceCB, MetricsCB, Trainer,
                        read_checkpoint, set_seed)
from tests.helpers.resume_run import NoisyData, OneCycleCB

failures = []


def check(ok, what):
    print(("PASS " if ok else "FAIL ") + what, flush=True)
    if not ok: failures.append(what)


class AmpCB(Callback):
    """Mixed precision with a gradient scaler: the scaler's state is callback state, saved in checkpoints."""

    claims = ("predict", "get_loss", "backward", "step")

    def before_fit(self, trainer): self.scaler = torch.amp.GradScaler("cuda", init_scale=2.0 ** 10)

    def predict(self, trainer):
        with torch.autocast("cuda", dtype=torch.float16): trainer.preds = trainer.model(trainer.batch[0])

    def get_loss(self, trainer):
        with torch.autocast("cuda", dtype=torch.float16):
            trainer.loss = trainer.loss_func(trainer.preds, trainer.batch[1])

    def backward(self, trainer): self.scaler.scale(trainer.loss).backward()

    def step(self, trainer):
        self.scaler.step(trainer.opt)
        self.scaler.update()

    def state_dict(self): return self.scaler.state_dict()
    def load_state_dict(self, state): self.scaler.load_state_dict(state)


class Stop(Callback):
    def __init__(self, at): self.at = at

    def after_batch(self, trainer):
        if trainer.training and (trainer.epoch, trainer.batch_num) == self.at: raise KeyboardInterrupt


def make(seed, deterministic, amp=False):
    set_seed(seed, deterministic=deterministic)
    if not deterministic:  # set_seed never switches determinism off (an earlier run here switched it on)
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.deterministic = False
    dls = DataLoaders(DataLoader(NoisyData(48), batch_size=4, shuffle=True), DataLoader(NoisyData(16), batch_size=8))
    model = nn.Sequential(nn.Linear(6, 64), nn.ReLU(), nn.Dropout(0.3), nn.Linear(64, 3))
    cbs = [DeviceCB("cuda"), BasicTrainCB(), MetricsCB(), OneCycleCB()] + ([AmpCB()] if amp else [])
    return Trainer(dls, nn.CrossEntropyLoss(), torch.optim.AdamW, model, cbs)


def resume_matches(deterministic, amp=False):
    ref = make(0, deterministic, amp)
    ref.fit(3, lr=1e-2)
    folder = tempfile.mkdtemp()
    t = make(0, deterministic, amp)
    try: t.fit(3, lr=1e-2, callbacks=[CheckpointCB(folder, every_n_batches=4), Stop((1, 6))])
    except KeyboardInterrupt: pass
    state = read_checkpoint(folder)
    resumed = make(1, deterministic, amp)
    resumed.fit(3, lr=1e-2, resume_from=folder)
    a, b = ref.model.state_dict(), resumed.model.state_dict()
    diff = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
    return all(torch.equal(a[k], b[k]) for k in a), diff, state, resumed


if not torch.cuda.is_available(): sys.exit("no CUDA GPU here")
print(torch.__version__, torch.cuda.get_device_name())

same, diff, state, _ = resume_matches(deterministic=True)
check("cuda" in state["rng"] and len(state["rng"]["cuda"]) == torch.cuda.device_count(), "CUDA RNG state is saved")
print(f"INFO deterministic CUDA resume: bit-identical={same}, max abs weight difference={diff:.3g}")
check(diff < 1e-4, "deterministic CUDA resume ends close to the uninterrupted run")
same, diff, _, _ = resume_matches(deterministic=False)
print(f"INFO non-deterministic CUDA resume: bit-identical={same}, max abs weight difference={diff:.3g}")
same, diff, state, resumed = resume_matches(deterministic=True, amp=True)
print(f"INFO AMP + GradScaler CUDA resume: bit-identical={same}, max abs weight difference={diff:.3g}")
check("AmpCB" in state["callbacks"] and "scale" in state["callbacks"]["AmpCB"], "the GradScaler state is saved")

# Labels outside the classes: a clear error, and the CUDA context survives (no device-side assert).
t = make(0, False)
t.dls.train.dataset.y[:] = 7
try:
    t.fit(1)
    check(False, "labels outside the classes raise on CUDA")
except CallbackError as e:
    check("Labels [7] are not among the model's 3 classes" in str(e), f"labels outside the classes on CUDA: {e}")
check(torch.ones(3, device="cuda").sum().item() == 3.0, "CUDA still usable after the label error")

# Model on the GPU, batches left on the CPU.
set_seed(0)
t = Trainer(DataLoaders(DataLoader(NoisyData(8), batch_size=4), DataLoader(NoisyData(8), batch_size=4)),
            nn.CrossEntropyLoss(), torch.optim.SGD, nn.Linear(6, 3).cuda(), [BasicTrainCB()])
try:
    t.fit(1)
    check(False, "model on cuda, batch on cpu raises")
except CallbackError as e:
    check("The model is on cuda:0 but the batch is on cpu. Add DeviceCB()" in str(e), f"device mismatch: {e}")

# A non-finite loss on the GPU is reported at the epoch's end, naming the batch.
t = make(0, False)
t.dls.train.dataset.x[10] = float("inf")
with warnings.catch_warnings(record=True) as w:
    warnings.simplefilter("always")
    t.fit(1, lr=1e-2)
msgs = [str(m.message) for m in w if "non-finite" in str(m.message)]
check(any(f"training loss was {v}" in m for m in msgs for v in ("nan", "inf")), f"non-finite warning: {msgs[:1]}")

sys.exit(1 if failures else 0)
