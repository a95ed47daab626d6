"""Memory: peak RSS of a fit with CoreCBs against the hand-written loop, and whether memory stays flat over epochs.

Each variant runs in its own process (peak RSS cannot be reset). Per epoch we print the RSS and the Python heap
(tracemalloc, which sees Python objects such as per-batch records, not tensor storage).

  python bench/memory_bench.py               # conv net, 3,200 images, bs 16 (200 batches an epoch), 10 epochs
  python bench/memory_bench.py --quick
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import resource
import subprocess
import sys
import tracemalloc

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from common import conv_model, fashion_mnist


def rss_mb() -> float:
    with open("/proc/self/statm") as f: return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def child(a) -> dict:
    from AIsaac.all import Accuracy, CoreCBs, DataLoaders, Trainer  # imported by both, so the import is not counted
    torch.set_num_threads(1)
    (xt, yt), (xv, yv), _ = fashion_mnist(None, a.n_train, a.n_valid)
    train = DataLoader(TensorDataset(xt, yt), a.bs, shuffle=True)
    valid = DataLoader(TensorDataset(xv, yv), a.bs * 2)
    torch.manual_seed(0)
    model = conv_model()
    per_epoch = []
    tracemalloc.start()
    base_rss, base_heap = rss_mb(), tracemalloc.get_traced_memory()[0]
    record = lambda: per_epoch.append((round(rss_mb() - base_rss, 2), round((tracemalloc.get_traced_memory()[0] - base_heap) / 2**10, 1)))
    if a.variant == "hand":
        opt, lf = torch.optim.Adam(model.parameters(), 1e-3), nn.CrossEntropyLoss()
        for _ in range(a.epochs):
            model.train()
            tot = torch.zeros(())
            for xb, yb in train:
                loss = lf(model(xb), yb)
                loss.backward(); opt.step(); opt.zero_grad()
                tot += loss.detach() * len(yb)
            model.eval()
            with torch.no_grad():
                correct = sum((model(xb).argmax(-1) == yb).sum() for xb, yb in valid)
            float(tot), float(correct)
            record()
    else:
        class Record:
            def cleanup_epoch(self, trainer):
                if not trainer.training: record()
        t = Trainer(DataLoaders(train, valid), nn.CrossEntropyLoss(), torch.optim.Adam, model,
                    [CoreCBs("cpu", Accuracy=Accuracy()), Record()])
        t.ProgressCB.bars = False
        with contextlib.redirect_stdout(io.StringIO()): t.fit(a.epochs, 1e-3)
    heap_peak = tracemalloc.get_traced_memory()[1] - base_heap
    return {"variant": a.variant, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "base_rss_mb": round(base_rss, 1), "heap_peak_kb": round(heap_peak / 2**10, 1), "per_epoch": per_epoch}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variant", choices=["hand", "aisaac"])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--n-train", type=int, default=3200)
    ap.add_argument("--n-valid", type=int, default=640)
    ap.add_argument("--bs", type=int, default=16)
    a = ap.parse_args()
    if a.quick: a.epochs, a.n_train, a.n_valid = 3, 640, 160
    if a.variant: return print(json.dumps(child(a)))
    rows = {}
    for v in ("hand", "aisaac"):
        cmd = [sys.executable, __file__, "--variant", v, "--epochs", str(a.epochs), "--n-train", str(a.n_train),
               "--n-valid", str(a.n_valid), "--bs", str(a.bs)]
        rows[v] = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()[-1])
    print(f"# conv net, synthetic {a.n_train} train / {a.n_valid} valid, bs {a.bs}, {a.epochs} epochs, 1 thread; "
          f"growth is measured from just before the fit")
    print("| variant | peak RSS MB | ratio | Python heap peak KB | RSS above start after each epoch, MB | Python heap above start after each epoch, KB |")
    print("|---|---|---|---|---|---|")
    for v, r in rows.items():
        rss = [e[0] for e in r["per_epoch"]]
        heap = [e[1] for e in r["per_epoch"]]
        print(f"| {v} | {r['peak_rss_mb']:.1f} | {r['peak_rss_mb'] / rows['hand']['peak_rss_mb']:.3f} | "
              f"{r['heap_peak_kb']:.0f} | {' '.join(f'{x:.1f}' for x in rss)} | {' '.join(f'{x:.0f}' for x in heap)} |")


if __name__ == "__main__":
    main()
