"""What `ActivationStatsCB` costs a training batch on the CPU, against the plain PyTorch record it replaces.

The seed tutorial's conv net (`get_model_conv()`, a batch of 64 Fashion-MNIST-sized images), one thread, forward
passes in turn: without hooks, with the callback's hooks on every module (as `CoreCBs` puts them), and with a
hand-written hook on every module recording what the original library records (`acts.mean()`, `acts.std()`,
`torch.histc(acts.abs(), 40, 0, 10)`); the minimum over repetitions of the mean time a pass, the recording's own cost
(the pass less the pass without hooks), and page faults a pass. Then whether both record the same numbers.

  python bench/activation_stats_bench.py [--reps 7] [--n 100]
"""
import argparse
import resource
import time

import torch

from AIsaac.all import ActivationStatsCB, get_model_conv


class _Trainer:  # what ActivationStatsCB's before_fit and before_batch read
    def __init__(self, model, n_batches):
        self.model, self.training, self.dls = model, True, type("D", (), {"train": [None] * n_batches})()


def per_pass(f, n, reps):
    """(min over `reps` of the mean microseconds a call of `f`, page faults a call)."""
    for _ in range(10): f()
    times, faults = [], resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(reps):
        t = time.process_time_ns()
        for _ in range(n): f()
        times.append((time.process_time_ns() - t) / n / 1e3)
    return min(times), (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / (n * reps)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--n", type=int, default=100, help="forward passes a repetition")
    a = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model, x = get_model_conv(), torch.randn(64, 1, 28, 28)
    cb = ActivationStatsCB()
    trainer = _Trainer(model, n_batches=10 ** 6)
    cb.before_fit(trainer)
    cb.before_batch(trainer)

    def with_cb(active):
        cb.active = active
        for h in cb.hooks: h.filled = 0  # every pass writes the rows of the first batch again
        with torch.no_grad(): model(x)

    hand_records = {}  # id(module): (mean, std, histogram) of its last output

    def hand_hook(module, inputs, out):
        acts = out.detach().float()
        hand_records[id(module)] = acts.mean(), acts.std(), torch.histc(acts.abs(), 40, 0, 10)

    def with_hand():
        with torch.no_grad(): model(x)

    bare, bare_faults = per_pass(lambda: with_cb(False), a.n, a.reps)
    ours, ours_faults = per_pass(lambda: with_cb(True), a.n, a.reps)
    handles = [m.register_forward_hook(hand_hook) for m in model.modules()]
    hand, hand_faults = per_pass(with_hand, a.n, a.reps)
    for h in handles: h.remove()
    print(f"# {len(cb.hooks)} modules hooked, batch of 64, torch {torch.__version__}, 1 thread, CPU clock; min over "
          f"{a.reps} repetitions of the mean of {a.n} forward passes")
    print("| forward pass | us a pass | recording's own us | page faults a pass |\n|---|---|---|---|")
    print(f"| no hooks | {bare:.0f} | - | {bare_faults:.1f} |")
    print(f"| hand-written hook (mean, std, histc) | {hand:.0f} | {hand - bare:.0f} | {hand_faults:.1f} |")
    print(f"| ActivationStatsCB | {ours:.0f} | {ours - bare:.0f} | {ours_faults:.1f} |")
    print(f"\nActivationStatsCB's recording costs {(ours - bare) / (hand - bare):.2f} of the hand-written hook's.")
    # The same numbers: one pass each on the same input.
    with_cb(True)
    handles = [m.register_forward_hook(hand_hook) for m in model.modules()]
    with_hand()
    for h in handles: h.remove()
    same_hist, worst = True, 0.0
    for hook in cb.hooks:
        mean, std, hist = hand_records[id(hook.module)]
        same_hist &= torch.equal(hook.rows[0][2:], hist)
        worst = max(worst, float((hook.rows[0][:2] - torch.stack([mean, std])).abs().max() / std))
    print(f"Histograms identical to histc's: {same_hist}; largest mean/std difference, relative to the std: {worst:.1e}")


if __name__ == "__main__":
    main()
