"""Where AIsaac's time per batch goes on shapes_bench's `(x, y)` row, in two measurements:

  python bench/step_parts.py              # both, 5 repetitions
  python bench/step_parts.py --only parts

`parts`: the step's five torch calls (forward, loss, backward, optimizer step, zero_grad) timed inside both loops in
lockstep (shapes_bench's `Lockstep`), each as its median over the fit's training batches; per call, AIsaac's time
minus the hand loop's, and the whole batch's difference. `--drop-outputs` also lets go of the previous batch's
outputs (`trainer.preds`, `trainer.loss`, `trainer.out`) before each forward, as the hand loop's locals are.

`--no-step-hook`: the trainer counts its steps itself instead of through the optimizer's step post-hook (a hook
AIsaac registers for the fit, so that only real optimizer steps count).

`null`: the Python of each loop alone, with a step that does no tensor work (a model returning a fixed tensor, a
loss function returning a fixed scalar, no backward, an optimizer whose step and zero_grad do nothing), microseconds
per batch over a long fit; CPU clock. The same four callbacks as shapes_bench.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import time

import torch
import torch.nn.functional as F
from torch import nn

import shapes_bench as S
from common import median

import AIsaac.all as A

CALLS = ("forward", "loss", "backward", "step", "zero_grad")
TIMER = time.perf_counter_ns


class TimedStepCB(A.BasicTrainCB):
    """BasicTrainCB's step for `(x, y)` batches, each torch call timed into `times` (the first batch: its own)."""

    def __init__(self, times: dict, drop: bool):
        super().__init__()
        self.times, self.drop = times, drop

    def predict(self, trainer):
        if not self.checked: return super().predict(trainer)
        if self.drop: trainer.out = trainer.preds = trainer.loss = None
        # Only the call is timed: the assignment frees the previous batch's output (the hand loop frees its own at the
        # end of each batch, outside the calls it times).
        t0 = TIMER(); preds = trainer.model(*trainer.xb); self.times["forward"] = TIMER() - t0
        trainer.preds = preds

    def get_loss(self, trainer):
        if not self.targets_checked: return super().get_loss(trainer)
        t0 = TIMER(); loss = trainer.loss_func(trainer.preds, *trainer.yb); self.times["loss"] = TIMER() - t0
        trainer.loss = loss

    def backward(self, trainer):
        t0 = TIMER(); trainer.loss.backward(); self.times["backward"] = TIMER() - t0

    def step(self, trainer):
        t0 = TIMER(); trainer.opt.step(); self.times["step"] = TIMER() - t0

    def zero_grad(self, trainer):
        t0 = TIMER(); trainer.opt.zero_grad(); self.times["zero_grad"] = TIMER() - t0


class TimedHand(S.HandLoop):
    """The hand loop's `(x, y)` step with the same five calls timed."""

    def __init__(self, model: nn.Module, lr: float, times: dict):
        super().__init__(S.XY(), model, lr)
        self.times = times

    def batch(self, b, training):
        if not training: return super().batch(b, training)
        t = [TIMER()]
        preds = self.model(b[0]); t.append(TIMER())
        loss = F.cross_entropy(preds, b[1]); t.append(TIMER())
        loss.backward(); t.append(TIMER())
        self.opt.step(); t.append(TIMER())
        self.opt.zero_grad(); t.append(TIMER())
        self.times.update({c: t[i + 1] - t[i] for i, c in enumerate(CALLS)})
        self.losses.append(loss.detach()), self.sizes.append(len(b[1]))


class Record(A.Callback):
    """After each training batch, both loops' call times into per-call lists."""
    order = 10_000

    def __init__(self, now: dict, kept: dict):
        self.now, self.kept = now, kept

    def after_batch(self, trainer):
        if not trainer.training: return
        for side, times in self.now.items():
            for c, ns in times.items(): self.kept[side][c].append(ns)


@contextlib.contextmanager
def _counting_batches(trainer, optimizer):
    yield True  # no hook: the trainer adds one per training batch


def parts(reps: int, drop: bool, no_hook: bool) -> None:
    train0, valid0 = S.data(600, 64, 60)
    print(f"# parts: lockstep, (x, y) row; per torch call, AIsaac's median minus the hand loop's (us); "
          f"drop previous outputs: {drop}; step post-hook: {not no_hook}")
    if no_hook:
        import AIsaac.trainer
        AIsaac.trainer.counting_steps = _counting_batches
    print("| rep | hand us per batch | AIsaac us per batch | difference | " + " | ".join(CALLS) + " |")
    print("|---" * (4 + len(CALLS)) + "|")
    for rep in range(reps):
        now = {"aisaac": {}, "hand": {}}
        kept = {side: {c: [] for c in CALLS} for side in now}
        torch.manual_seed(0); hand = TimedHand(S.MLP(), 1e-3, now["hand"])
        torch.manual_seed(0); model = S.MLP()
        tl, vl = S.Lockstep(train0, hand, True), S.Lockstep(valid0, hand, False)
        cbs = [TimedStepCB(now["aisaac"], drop), A.MetricsCB(Accuracy=A.Accuracy()), A.DeviceCB("cpu"),
               A.ProgressCB(bars=False), Record(now, kept)]
        trainer = A.Trainer(A.DataLoaders(tl, vl), F.cross_entropy, torch.optim.Adam, model, cbs)
        with contextlib.redirect_stdout(io.StringIO()): trainer.fit(1, 1e-3)
        h, c = median(tl.hand_ns[20:]) / 1e3, median(tl.consumer_ns[20:]) / 1e3
        diffs = [(median(kept["aisaac"][k][20:]) - median(kept["hand"][k][20:])) / 1e3 for k in CALLS]
        print(f"| {rep} | {h:.1f} | {c:.1f} | {c - h:+.2f} | " + " | ".join(f"{d:+.2f}" for d in diffs) + " |",
              flush=True)


class NullModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))
        self.out = torch.zeros(64, S.N_CLASSES)

    def forward(self, x): return self.out


class NullOpt:
    """An optimizer that does nothing (no step post-hook: the trainer counts the steps itself)."""
    def __init__(self, params, lr=1e-3): self.param_groups, self.state = [{"params": list(params), "lr": lr}], {}
    def step(self): pass
    def zero_grad(self, set_to_none: bool = True): pass
    def state_dict(self): return {"state": {}, "param_groups": []}
    def load_state_dict(self, state): pass


class NullStepCB(A.BasicTrainCB):
    def backward(self, trainer): pass  # the fixed loss has no graph


def null(reps: int, n: int = 5000) -> None:
    loss = torch.tensor(1.0)
    def loss_func(preds, y): return loss
    batch = (torch.zeros(64, S.N_IN), torch.zeros(64, dtype=torch.long))
    train, valid = [batch] * n, [batch] * 10

    def hand():
        model, opt = NullModel(), NullOpt([])
        losses, sizes = [], []
        for b in train:
            out = loss_func(model(b[0]), b[1])
            opt.step(), opt.zero_grad()
            losses.append(out.detach()), sizes.append(len(b[1]))

    def aisaac():
        cbs = [NullStepCB(), A.MetricsCB(), A.DeviceCB("cpu"), A.ProgressCB(bars=False)]
        trainer = A.Trainer(A.DataLoaders(train, valid), loss_func, NullOpt, NullModel(), cbs)
        with contextlib.redirect_stdout(io.StringIO()): trainer.fit(1, 1e-3)

    times: dict[str, list[float]] = {"hand": [], "aisaac": []}
    for _ in range(reps):
        for name, run in (("hand", hand), ("aisaac", aisaac)):
            t0 = time.process_time_ns(); run(); times[name].append((time.process_time_ns() - t0) / n / 1e3)
    h, a = median(times["hand"]), median(times["aisaac"])
    print(f"# null step: {n} batches a fit, {reps} fits each, CPU clock; median us per batch\n"
          f"| hand loop | AIsaac | AIsaac over hand |\n|---|---|---|\n| {h:.2f} | {a:.2f} | {a - h:+.2f} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--only", choices=("parts", "null"))
    ap.add_argument("--drop-outputs", action="store_true")
    ap.add_argument("--no-step-hook", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(1)
    if a.only != "null": parts(a.reps, a.drop_outputs, a.no_step_hook)
    if a.only != "parts": null(a.reps)


if __name__ == "__main__":
    main()
