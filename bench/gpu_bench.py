"""GPU benchmark: the tutorial's workload (Fashion-MNIST, conv net, Adam 1e-3, bs 64, 3 epochs), six ways.

  hand-dl        hand-written loop over a DataLoader with pinned memory (the baseline of the default path)
  hand-resident  hand-written loop, data held on the GPU, batches drawn by index
  hand-graph     hand-written loop with the step captured once as a CUDA graph (last partial batch dropped)
  aisaac         AIsaac with the tutorial's four callbacks over the same DataLoader
  aisaac-fast    AIsaac with resident TensorLoaders (drop_last) and CudaGraphCB
  lightning      PyTorch Lightning over the same DataLoader, when installed

  python bench/gpu_bench.py --data /usr/share/datasets/fashion-mnist
  python bench/gpu_bench.py --device cpu --small     # a smoke test without a GPU
Without --data (or when its files are missing) it uses synthetic data of the same shape, and says so.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import io
import time
import warnings

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from common import DEFAULT_DATA, conv_model, fashion_mnist, hand_fit, median

from AIsaac.all import (Accuracy, BasicTrainCB, CudaGraphCB, DataLoaders, DeviceCB, MetricsCB, ProgressCB, Trainer)


def sync(device):
    if device.type == "cuda": torch.cuda.synchronize()


def evaluate(model, xv, yv, bs=128):
    model.eval()
    with torch.no_grad():
        correct = sum((model(xv[i:i + bs]).argmax(-1) == yv[i:i + bs]).sum() for i in range(0, len(xv), bs))
    return correct.item() / len(xv)


def run_hand_dl(a, data, device):
    (xt, yt), (xv, yv) = data
    pin = device.type == "cuda"
    train = DataLoader(TensorDataset(xt, yt), a.bs, shuffle=True, pin_memory=pin, num_workers=a.workers)
    valid = DataLoader(TensorDataset(xv, yv), a.bs * 2, pin_memory=pin, num_workers=a.workers)
    model = conv_model()
    log = hand_fit(model, train, valid, a.epochs, 1e-3, device)
    return model, log["accuracy"]


def run_hand_resident(a, data, device):
    (xt, yt), (xv, yv) = ((x.to(device), y.to(device)) for x, y in data)
    model = conv_model().to(device)
    opt, loss_func = torch.optim.Adam(model.parameters(), 1e-3), nn.CrossEntropyLoss()
    for _ in range(a.epochs):
        model.train()
        for idx in torch.randperm(len(xt), device=device).split(a.bs):
            loss = loss_func(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
            opt.zero_grad()
        acc = evaluate(model, xv, yv)
    return model, acc


def run_hand_graph(a, data, device):
    if device.type != "cuda": return None, "skipped: needs CUDA"
    (xt, yt), (xv, yv) = ((x.to(device), y.to(device)) for x, y in data)
    model = conv_model().to(device)
    opt, loss_func = torch.optim.Adam(model.parameters(), 1e-3, capturable=True), nn.CrossEntropyLoss()
    sx, sy = xt[:a.bs].clone(), yt[:a.bs].clone()
    # Warm-up on a side stream, then capture (PyTorch's CUDA graphs notes, whole-network capture). The warm-up steps
    # train on the first batch; we keep them, as a hand-written script would.
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(3):
            opt.zero_grad(set_to_none=True)
            loss_func(model(sx), sy).backward()
            opt.step()
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    opt.zero_grad(set_to_none=True)
    with torch.cuda.graph(g):
        static_loss = loss_func(model(sx), sy)
        static_loss.backward()
        opt.step()
    n_full = len(xt) // a.bs * a.bs
    for _ in range(a.epochs):
        model.train()
        for idx in torch.randperm(len(xt), device=device)[:n_full].split(a.bs):
            sx.copy_(xt[idx])
            sy.copy_(yt[idx])
            g.replay()
        acc = evaluate(model, xv, yv)
    return model, acc


def aisaac_callbacks(device):
    return [BasicTrainCB(), MetricsCB(Accuracy=Accuracy()), DeviceCB(device), ProgressCB(bars=False)]


def run_aisaac(a, data, device):
    (xt, yt), (xv, yv) = data
    pin = device.type == "cuda"
    dls = DataLoaders(DataLoader(TensorDataset(xt, yt), a.bs, shuffle=True, pin_memory=pin, num_workers=a.workers),
                      DataLoader(TensorDataset(xv, yv), a.bs * 2, pin_memory=pin, num_workers=a.workers))
    t = Trainer(dls, nn.CrossEntropyLoss(), torch.optim.Adam, conv_model(), aisaac_callbacks(device))
    with contextlib.redirect_stdout(io.StringIO()): t.fit(a.epochs, 1e-3)
    return t.model, t.MetricsCB.metrics_epoch[-1]["Accuracy"]


def run_aisaac_fast(a, data, device):
    dls = DataLoaders.from_tensors(*data, a.bs, drop_last=True, device=device)
    cbs = [CudaGraphCB(), *aisaac_callbacks(device)[1:]]
    opt_func = functools.partial(torch.optim.Adam, capturable=device.type == "cuda")  # capturable Adam needs a GPU
    t = Trainer(dls, nn.CrossEntropyLoss(), opt_func, conv_model(), cbs)
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        if device.type != "cuda": warnings.simplefilter("ignore")  # it declines on the CPU, as it should
        t.fit(a.epochs, 1e-3)
    return t.model, t.MetricsCB.metrics_epoch[-1]["Accuracy"]


def run_lightning(a, data, device):
    try: import pytorch_lightning as pl
    except ImportError as e:  # not installed, or installed without something it needs: the error says which
        return None, f"skipped: {type(e).__name__}: {e} (bash bench/setup_peers.sh)"
    import logging
    for name in ("pytorch_lightning", "lightning.pytorch"): logging.getLogger(name).setLevel(logging.ERROR)
    (xt, yt), (xv, yv) = data
    pin = device.type == "cuda"
    train = DataLoader(TensorDataset(xt, yt), a.bs, shuffle=True, pin_memory=pin, num_workers=a.workers)
    valid = DataLoader(TensorDataset(xv, yv), a.bs * 2, pin_memory=pin, num_workers=a.workers)
    model = conv_model()

    class Module(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.model, self.loss_func = model, nn.CrossEntropyLoss()
        def training_step(self, b, i): return self.loss_func(self.model(b[0]), b[1])
        def validation_step(self, b, i):
            p = self.model(b[0])
            self.log("accuracy", (p.argmax(-1) == b[1]).float().mean(), on_epoch=True)
        def configure_optimizers(self): return torch.optim.Adam(self.parameters(), 1e-3)

    tr = pl.Trainer(max_epochs=a.epochs, accelerator="gpu" if device.type == "cuda" else "cpu", devices=1,
                    enable_progress_bar=False, logger=False, enable_checkpointing=False, enable_model_summary=False,
                    num_sanity_val_steps=0)
    tr.fit(Module(), train, valid)
    return model, float(tr.callback_metrics["accuracy"])


RUNS = {"hand-dl": run_hand_dl, "hand-resident": run_hand_resident, "hand-graph": run_hand_graph,
        "aisaac": run_aisaac, "aisaac-fast": run_aisaac_fast, "lightning": run_lightning}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=DEFAULT_DATA, help="folder with the Fashion-MNIST idx .gz files")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--small", action="store_true", help="2,000 training images, 1 epoch (a smoke test)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--bs", type=int, default=64)
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--workers", type=int, default=0, help="DataLoader workers for the DataLoader variants")
    ap.add_argument("--runs", default=",".join(RUNS))
    a = ap.parse_args()
    n_train, n_valid = (2000, 500) if a.small else (None, None)
    if a.small: a.epochs = 1
    device = torch.device(a.device)
    (xt, yt), (xv, yv), source = fashion_mnist(a.data, n_train, n_valid)
    data = ((xt, yt), (xv, yv))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"# {name}, torch {torch.__version__}; {source}; train {len(xt)}, valid {len(xv)}, bs {a.bs}, "
          f"{a.epochs} epoch(s), {a.reps} repetition(s), DataLoader workers {a.workers}", flush=True)
    # Warm-up (CUDA context, cuDNN plans, allocator) so the first variant does not pay for it.
    warm = argparse.Namespace(**{**vars(a), "epochs": 1})
    run_hand_resident(warm, ((xt[:2048], yt[:2048]), (xv[:512], yv[:512])), device)
    sync(device)
    times, accs = {}, {}
    for rep in range(a.reps):
        for r in a.runs.split(","):
            torch.manual_seed(rep)
            t0 = time.perf_counter()
            model, acc = RUNS[r](a, data, device)
            sync(device)
            if model is None: accs[r] = acc; continue
            times.setdefault(r, []).append(time.perf_counter() - t0)
            accs[r] = acc
            print(f"  {r}: {times[r][-1]:.2f} s, accuracy {acc:.4f}", flush=True)
    t = {r: median(v) for r, v in times.items()}
    ratio = lambda r, base: f"{t[r] / t[base]:.2f}x {base}" if r in t and base in t else "-"
    print("\n| run | seconds | images/s | final accuracy | ratio |\n|---|---|---|---|---|")
    for r in a.runs.split(","):
        if r not in t: print(f"| {r} | - | - | - | {accs.get(r)} |"); continue
        base = {"aisaac": "hand-dl", "lightning": "hand-dl", "aisaac-fast": "hand-graph",
                "hand-resident": "hand-dl", "hand-graph": "hand-dl"}.get(r)
        rt = ratio(r, base) if base else "1.00"
        print(f"| {r} | {t[r]:.2f} | {a.epochs * len(xt) / t[r]:,.0f} | {accs[r]:.4f} | {rt} |")


if __name__ == "__main__":
    main()
