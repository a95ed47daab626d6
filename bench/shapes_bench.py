"""The framework's tax per batch on the harshest case: a tiny MLP on batches already in memory (a step of a few
tenths of a millisecond, so every microsecond AIsaac adds shows), one batch shape or callback per row, AIsaac and a
hand-written loop doing the same work in turn in one process; CPU clock (this process's CPU time), one thread,
medians over repetitions.

  python bench/shapes_bench.py              # every row, 7 repetitions
  python bench/shapes_bench.py --quick      # 2 repetitions of a short fit (a smoke test)
  python bench/shapes_bench.py --rows log,ema

Rows: `xy` (x, y) tuples; `mapping` dicts passed as `model(**batch)`, the model returning its own loss
(`loss_func=None`); `two_inputs` (x1, x2, y) with `BasicTrainCB(n_inp=2)`; `log` a value `trainer.log`ged every
batch; `ema` EMACB(decay=0.999); `mixup` MixUpCB(alpha=0.4, num_classes=10). A row whose callback AIsaac does not
have yet is skipped, and says so. Each row checks that both loops did the same work: the same final weights, to the bit.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import platform
import time
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from common import median

import AIsaac.all as A

N_IN, N_HID, N_CLASSES = 20, 32, 10


class MLP(nn.Module):
    """The tiny model; `forward(x1, x2)` concatenates two inputs; `with_loss` returns `{'loss', 'logits'}`."""

    def __init__(self, n_in: int = N_IN, with_loss: bool = False):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_in, N_HID), nn.ReLU(), nn.Linear(N_HID, N_CLASSES))
        self.with_loss = with_loss

    def forward(self, x: torch.Tensor, x2: torch.Tensor | None = None, labels: torch.Tensor | None = None) -> Any:
        logits = self.net(x if x2 is None else torch.cat([x, x2], 1))
        if not self.with_loss: return logits
        return {"loss": F.cross_entropy(logits, labels), "logits": logits}


def data(n_batches: int, bs: int, n_valid: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    protos = torch.randn(N_CLASSES, N_IN, generator=g)
    def batch():
        y = torch.randint(0, N_CLASSES, (bs,), generator=g)
        return protos[y] + torch.randn(bs, N_IN, generator=g), y
    return [batch() for _ in range(n_batches)], [batch() for _ in range(n_valid)]


# ---------------- the rows: how each loop sees a batch, and what the step adds ----------------

class Row:
    """One row: batches in its shape, the model, AIsaac's extra callbacks and Trainer arguments, the hand loop's
    version of the same, and the AIsaac name it needs (skipped when absent)."""
    needs: str | None = None
    random = False  # whether the step draws random numbers
    n_inp = 1
    loss_func: Callable | None = staticmethod(F.cross_entropy)  # the hand loop calls the same function

    def shape(self, x, y): return x, y
    def model(self) -> nn.Module: return MLP()
    def callbacks(self) -> list: return []
    # the hand loop: inputs and targets of a batch, and the loss
    def hand_forward(self, model, b): return model(b[0]), b[1]
    def hand_loss(self, model, preds, y): return F.cross_entropy(preds, y)
    def hand_before_step(self, state, b): return b
    def hand_after_step(self, state, model, loss, n): pass
    def hand_after_batch(self, state, preds, n): pass
    def hand_end_phase(self, state) -> None: pass
    def hand_start(self, model) -> dict: return {}


class XY(Row): pass


class Mapping_(Row):
    loss_func = None
    def shape(self, x, y): return {"x": x, "labels": y}
    def model(self): return MLP(with_loss=True)
    def hand_forward(self, model, b):
        out = model(**b)
        self._loss = out["loss"]
        return out["logits"], b["labels"]
    def hand_loss(self, model, preds, y): return self._loss


class TwoInputs(Row):
    n_inp = 2
    def shape(self, x, y): return x[:, :N_IN // 2], x[:, N_IN // 2:], y
    def hand_forward(self, model, b): return model(b[0], b[1]), b[2]


class LogCB(A.Callback):
    """Logs one value a batch: the batch's largest logit (a tensor already on hand, so logging is all it costs)."""
    def after_batch(self, trainer): trainer.log("top_logit", trainer.preds.detach().max())


class Log(Row):
    def callbacks(self): return [LogCB()]
    def hand_start(self, model): return {"logged": [], "sizes": [], "means": []}
    def hand_after_batch(self, state, preds, n):
        state["logged"].append(preds.detach().max())
        state["sizes"].append(n)
    def hand_end_phase(self, state):  # one reduction per phase, as MetricsCB reads trainer.log's values
        logged, sizes = torch.stack(state["logged"]), torch.tensor(state["sizes"], dtype=torch.float32)
        state["means"].append(((logged * sizes).sum() / sizes.sum()).item())
        state["logged"], state["sizes"] = [], []


class EMA(Row):
    needs = "EMACB"
    def callbacks(self): return [A.EMACB(decay=0.999)]
    def hand_start(self, model):
        avg = [p.detach().clone() for p in model.parameters()]
        return {"avg": avg, "src": [p for p in model.parameters()]}
    @torch.no_grad()
    def hand_after_step(self, state, model, loss, n): torch._foreach_lerp_(state["avg"], state["src"], 1 - 0.999)


class MixUp(Row):
    needs = "MixUpCB"
    random = True
    def callbacks(self): return [A.MixUpCB(alpha=0.4, num_classes=N_CLASSES)]
    def hand_start(self, model): return {"alpha": torch.tensor(0.4)}
    def hand_before_step(self, state, b):
        x, y = b
        a = state["alpha"]
        lam = torch.distributions.Beta(a, a, validate_args=False).sample()
        perm = torch.randperm(len(x))
        x = lam * x + (1 - lam) * x[perm]
        y1 = F.one_hot(y, N_CLASSES).float()
        return x, lam * y1 + (1 - lam) * y1[perm]


ROWS: dict[str, Row] = {"xy": XY(), "mapping": Mapping_(), "two_inputs": TwoInputs(), "log": Log(), "ema": EMA(),
                        "mixup": MixUp()}


# ---------------- the two loops ----------------

class HandLoop:
    """The step by hand, one batch at a time: losses kept as references and reduced once per phase, accuracy counted
    on the device. `run_hand` is the whole hand-written loop around it; `Lockstep` calls `batch` between AIsaac's."""

    def __init__(self, row: Row, model: nn.Module, lr: float):
        self.row, self.model, self.opt = row, model, torch.optim.Adam(model.parameters(), lr)
        self.state = row.hand_start(model)
        self.begin(True)

    def begin(self, training: bool) -> None:
        self.model.train(training)
        self.losses, self.sizes, self.correct = [], [], None

    def batch(self, b: Any, training: bool) -> None:
        row, state = self.row, self.state
        if training:
            b = row.hand_before_step(state, b)
            preds, y = row.hand_forward(self.model, b)
            loss = row.hand_loss(self.model, preds, y)
            loss.backward()
            self.opt.step()
            self.opt.zero_grad()
            row.hand_after_step(state, self.model, loss, len(y))
            self.losses.append(loss.detach()), self.sizes.append(len(y))
        else:
            preds, y = row.hand_forward(self.model, b)
            self.losses.append(row.hand_loss(self.model, preds, y)), self.sizes.append(len(y))
            hits = (preds.argmax(-1) == y).sum()
            self.correct = hits if self.correct is None else self.correct + hits
        row.hand_after_batch(state, preds, len(y))

    def end(self, training: bool) -> dict:
        out = {"train" if training else "valid": (torch.stack(self.losses) * torch.tensor(self.sizes)).sum().item()
               / sum(self.sizes)}
        if not training: out["accuracy"] = self.correct.item() / sum(self.sizes)
        self.row.hand_end_phase(self.state)
        return out


def run_hand(row: Row, model: nn.Module, train: list, valid: list, epochs: int, lr: float) -> dict:
    loop, out = HandLoop(row, model, lr), {}
    for _ in range(epochs):
        loop.begin(True)
        for b in train: loop.batch(b, True)
        out.update(loop.end(True))
        loop.begin(False)
        with torch.no_grad():  # as AIsaac validates
            for b in valid: loop.batch(b, False)
        out.update(loop.end(False))
    return out


def run_aisaac(row: Row, model: nn.Module, train: Any, valid: Any, epochs: int, lr: float) -> dict:
    cbs = [A.BasicTrainCB(n_inp=row.n_inp), A.MetricsCB(Accuracy=A.Accuracy()), A.DeviceCB("cpu"),
           A.ProgressCB(bars=False), *row.callbacks()]
    trainer = A.Trainer(A.DataLoaders(train, valid), row.loss_func, torch.optim.Adam, model, cbs)
    with contextlib.redirect_stdout(io.StringIO()): trainer.fit(epochs, lr)
    m = trainer.MetricsCB
    return {**m.losses_epoch[-1], "accuracy": float(m.metrics_epoch[-1]["Accuracy"])}


CLOCK = time.process_time_ns  # this process's CPU time, as the whole-run figures


class Lockstep:
    """A loader that hands out `batches` and, at each batch, also runs the hand loop's step on it (`hand`, with its own
    model and optimizer), timing both on the CPU clock: the hand step, and the consumer (AIsaac) from getting the
    batch to asking for the next. The two alternate batch by batch, so a machine whose speed drifts slows both alike;
    which one goes first alternates too. A row that draws random numbers (MixUp) gives the hand loop its own copy of
    the random state, swapped in and out outside the timed spans, so both draw what they would alone."""

    def __init__(self, batches: list, hand: HandLoop, training: bool, rng: list | None = None):
        self.batches, self.hand, self.training, self.rng = batches, hand, training, rng
        self.hand_ns: list[int] = []
        self.consumer_ns: list[int] = []

    def __len__(self) -> int: return len(self.batches)

    def _hand(self, b: Any) -> int:
        rng = self.rng
        if rng is not None: consumer_state = torch.get_rng_state(); torch.set_rng_state(rng[0])
        t0 = CLOCK(); self.hand.batch(b, self.training); t1 = CLOCK()
        if rng is not None: rng[0] = torch.get_rng_state(); torch.set_rng_state(consumer_state)
        return t1 - t0

    def __iter__(self):
        self.hand.begin(self.training)
        for i, b in enumerate(self.batches):
            if i % 2 == 0: self.hand_ns.append(self._hand(b))
            t0 = CLOCK()
            yield b
            self.consumer_ns.append(CLOCK() - t0)
            if i % 2 == 1: self.hand_ns.append(self._hand(b))
        self.hand.end(self.training)


def lockstep(row: Row, train: list, valid: list, epochs: int, lr: float, consumer: str, skip: int = 20
             ) -> tuple[float, float, bool]:
    """One fit in lockstep with the hand loop: the medians (ns) of the hand's and the consumer's time per batch,
    leaving out each phase's first `skip` batches, and whether the two ended with the same weights. `consumer` is
    'aisaac', or 'hand' (a second hand loop in AIsaac's place: the method's own bias, which should read 1.000)."""
    torch.manual_seed(0)
    hand_model = row.model()
    torch.manual_seed(0)
    model = row.model()
    hand = HandLoop(row, hand_model, lr)
    rng = [torch.get_rng_state()] if row.random else None  # both start from the same random state
    tl, vl = Lockstep(train, hand, True, rng), Lockstep(valid, hand, False, rng)
    if consumer == "aisaac": run_aisaac(row, model, tl, vl, epochs, lr)
    else: run_hand(row, model, tl, vl, epochs, lr)
    hand_ns = tl.hand_ns[skip:] + vl.hand_ns[skip:]
    consumer_ns = tl.consumer_ns[skip:] + vl.consumer_ns[skip:]
    same = all(torch.equal(p, q) for p, q in zip(hand_model.parameters(), model.parameters()))
    return median(hand_ns), median(consumer_ns), same


def whole_runs(row: Row, train: list, valid: list, epochs: int, reps: int
               ) -> tuple[float, float, float, float, bool]:
    """Whole fits, AIsaac and the hand loop in turn (alternating which goes first): the median CPU seconds of each, the
    median of the paired ratios, the ratio of the fastest fits, and whether both ended with the same weights."""
    times: dict[str, list[float]] = {"hand": [], "aisaac": []}
    weights: dict[str, list[torch.Tensor]] = {}
    for rep in range(reps):
        for f in (("hand", "aisaac") if rep % 2 == 0 else ("aisaac", "hand")):
            torch.manual_seed(rep)
            model = row.model()
            run = run_hand if f == "hand" else run_aisaac
            t0 = time.process_time()
            run(row, model, train, valid, epochs, 1e-3)
            times[f].append(time.process_time() - t0)
            weights[f] = [p.detach().clone() for p in model.parameters()]
    same = all(torch.equal(p, q) for p, q in zip(weights["hand"], weights["aisaac"]))
    # Each repetition's two runs are next to each other in time: their ratio is the least disturbed by a machine
    # whose speed drifts (other tenants of a VM), so the median of those ratios is the figure to read.
    paired = median([a_ / h_ for a_, h_ in zip(times["aisaac"], times["hand"])])
    # A slower machine only ever adds time, so each side's fastest fit is the one least disturbed.
    fastest = min(times["aisaac"]) / min(times["hand"])
    return median(times["hand"]), median(times["aisaac"]), paired, fastest, same


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="200 batches, 1 epoch, 2 repetitions")
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batches", type=int, default=600, help="training batches per epoch")
    ap.add_argument("--bs", type=int, default=64)
    ap.add_argument("--rows", default=",".join(ROWS))
    a = ap.parse_args()
    if a.quick: a.batches, a.epochs, a.reps = 200, 1, 2
    torch.set_num_threads(1)
    train0, valid0 = data(a.batches, a.bs, max(1, a.batches // 10))
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} "
          f"thread, CPU clock (this process's CPU time); MLP {N_IN}-{N_HID}-{N_CLASSES}, {a.batches} training + "
          f"{len(valid0)} validation batches of {a.bs} in memory, {a.epochs} epoch(s) a fit, Adam, {a.reps} "
          f"repetitions; AIsaac's callbacks: BasicTrainCB, MetricsCB(Accuracy), DeviceCB, ProgressCB(bars=False) and "
          f"the row's.\n# Per batch (lockstep): at every batch the hand step and AIsaac's, in turn, on the same batch, "
          f"each on its own model; the median time per batch of each (each phase's first 20 left out), and their "
          f"ratio, the median over the repetitions. Whole fits: each fit timed whole (construction, setup and the "
          f"epochs' ends included), AIsaac and the hand loop in turn; the median of the paired ratios, and the ratio "
          f"of each side's fastest fit.")
    print("| row | hand us per batch | AIsaac us per batch | per-batch ratio | whole fits: hand median s | "
          "AIsaac median s | median of paired ratios | fastest over fastest | same final weights |\n"
          "|---|---|---|---|---|---|---|---|---|")
    for name in ["check", *a.rows.split(",")]:
        row = ROWS["xy" if name == "check" else name]
        if row.needs and not hasattr(A, row.needs):
            print(f"| {name} | skipped: AIsaac.all has no {row.needs} yet | | | | | | | |", flush=True)
            continue
        train, valid = [row.shape(x, y) for x, y in train0], [row.shape(x, y) for x, y in valid0]
        consumer = "hand" if name == "check" else "aisaac"
        for f in (run_hand, run_aisaac): f(row, row.model(), train[:20], valid[:2], 1, 1e-3)  # warm-up, untimed
        steps = [lockstep(row, train, valid, a.epochs, 1e-3, consumer) for _ in range(a.reps)]
        h, c = median([s_[0] for s_ in steps]), median([s_[1] for s_ in steps])
        ratio = median([s_[1] / s_[0] for s_ in steps])
        same = all(s_[2] for s_ in steps)
        if name == "check":  # the method's own bias: a second hand loop where AIsaac runs
            print(f"| check: the hand loop in AIsaac's place | {h / 1e3:.1f} | {c / 1e3:.1f} | {ratio:.3f} | | | | | "
                  f"{same} |", flush=True)
            continue
        wh, wa, paired, fastest, same_whole = whole_runs(row, train, valid, a.epochs, a.reps)
        print(f"| {name} | {h / 1e3:.1f} | {c / 1e3:.1f} | {ratio:.3f} | {wh:.3f} | {wa:.3f} | {paired:.3f} | "
              f"{fastest:.3f} | {same and same_whole} |", flush=True)


if __name__ == "__main__":
    main()
