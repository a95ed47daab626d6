"""The seed tutorial end to end: its acceptance script run verbatim (import, dataset, three fits, checks), wall time
and peak memory, next to the same work written by hand (`seed_hand.py`) and to other checkouts of AIsaac (an earlier
commit, the original library); each run in its own process, the variants in turn in each repetition.

  python bench/seed_bench.py --acceptance ../shared/acceptance                    # this AIsaac and the hand loops
  python bench/seed_bench.py --acceptance ../shared/acceptance --reps 2 --before DIR \\
      --original DIR --original-python PY                                          # with other checkouts beside it
  python bench/seed_bench.py --acceptance ../shared/acceptance --check             # same batches, same RNG, same table

`--before DIR`: a folder holding another AIsaac package (e.g. `git archive COMMIT AIsaac | tar -x -C DIR`), run with
this Python. `--original DIR --original-python PY`: the original library (github.com/Isaac-Flath/AIsaac) and a
Python with its dependencies; its trainer calls IPython's `display`, a notebook builtin, so the run defines it first.
`ACCEPT_N_TRAIN` (or `--n-train`) shortens the training split; 0 is the full 60,000.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import platform
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# The original prints its epoch table with `display`, each later epoch's row as a pandas Styler (header hidden),
# which a terminal shows only as its repr; the shim prints the Styler's frame as text, so every row can be read.
ORIGINAL_SHIM = ("import builtins, runpy, sys; from IPython.display import display as show; "
                 "builtins.display = lambda o: print(o.data.to_string(header=False)) if hasattr(o, 'data') and "
                 "hasattr(o.data, 'to_string') else show(o); "
                 "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')")
ROW = re.compile(r"^\s*(\d+)\s+([0-9.]+)\s+([0-9.]+)\s+([0-9.]+)\s*$")


class TreeMemory(threading.Thread):
    """Samples a process and its children: the peak of their summed RSS and of their summed PSS (shared pages
    counted once, split among the processes that share them: what the run really holds), in bytes. Reads
    /proc/PID/smaps_rollup, which the kernel sums, so sampling costs little beside the run."""

    def __init__(self, pid: int, every: float = 0.5):
        super().__init__(daemon=True)
        self.proc, self.every, self.peak_rss, self.peak_pss, self.peak_procs = psutil.Process(pid), every, 0, 0, 0
        self.done = threading.Event()

    @staticmethod
    def rollup(pid: int) -> tuple[int, int]:
        rss = pss = 0
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Rss:"): rss = int(line.split()[1]) * 1024
                elif line.startswith("Pss:"): pss = int(line.split()[1]) * 1024
        return rss, pss

    def run(self):
        while not self.done.is_set():
            rss = pss = 0
            try: procs = [self.proc.pid, *(c.pid for c in self.proc.children(recursive=True))]
            except psutil.Error: break
            for pid in procs:
                try: r, p = self.rollup(pid)
                except OSError: continue
                rss, pss = rss + r, pss + p
            self.peak_rss, self.peak_pss = max(self.peak_rss, rss), max(self.peak_pss, pss)
            self.peak_procs = max(self.peak_procs, len(procs))
            self.done.wait(self.every)


def run_variant(argv: list[str], pythonpath: str | None, env_extra: dict[str, str], cwd: str) -> dict:
    """One run in its own process (in `cwd`: `python -c` puts the working folder first on sys.path, so not a
    checkout's root, whose AIsaac would shadow the one on `pythonpath`)."""
    env = {**os.environ, "MPLBACKEND": "Agg", **env_extra}
    env.pop("PYTHONPATH", None)
    if pythonpath: env["PYTHONPATH"] = pythonpath
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=cwd)
    mem = TreeMemory(p.pid)
    mem.start()
    out = []
    reader = threading.Thread(target=lambda: out.extend(p.stdout), daemon=True)
    reader.start()
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    mem.done.set()
    reader.join()
    p.returncode = os.waitstatus_to_exitcode(status)
    text = "".join(out).replace("\r", "\n")
    rows = [tuple(float(v) for v in m.groups()[1:]) for m in map(ROW.match, text.splitlines()) if m]
    checks = next((l.strip() for l in reversed(text.splitlines()) if re.match(r"^(all checks passed|\d+ failed)$", l.strip())), "")
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "load": os.getloadavg()[0], "rc": p.returncode, "maxrss": usage.ru_maxrss * 1024, "tree_rss": mem.peak_rss,
            "tree_pss": mem.peak_pss, "procs": mem.peak_procs, "rows": rows, "checks": checks, "tail": text[-3000:]}


def variants(a) -> dict[str, tuple[list[str], str | None]]:
    script = str(Path(a.acceptance) / "seed_tutorial.py")
    hand = [sys.executable, str(HERE / "seed_hand.py"), "--acceptance", a.acceptance]
    sys.path.insert(0, str(ROOT))
    from AIsaac.data.dataset_loader import loading_plan
    workers, threads = loading_plan(4)
    out = {"hand": (hand, None)}
    if workers:
        out[f"hand, {workers} persistent worker(s), {threads} thread(s)"] = (
            hand + ["--workers", str(workers), "--threads", str(threads), "--persistent"], None)
    out["AIsaac (this checkout)"] = ([sys.executable, script], str(ROOT))
    if a.before: out["AIsaac before"] = ([sys.executable, script], a.before)
    if a.original: out["original AIsaac"] = ([a.original_python, "-c", ORIGINAL_SHIM, script], a.original)
    return out


def bench(a) -> None:
    env_extra = {"ACCEPT_N_TRAIN": str(a.n_train)} if a.n_train is not None else {}
    vs = variants(a)
    results: dict[str, list[dict]] = {k: [] for k in vs}
    for rep in range(a.reps):
        for name, (argv, path) in vs.items():  # in turn, so a shared machine's drifts hit every variant alike
            r = run_variant(argv, path, env_extra, a.acceptance)
            results[name].append(r)
            print(f"# rep {rep}: {name}: {r['wall']:.1f} s, rc {r['rc']}, {r['checks'] or 'no checks'}, "
                  f"load average {os.getloadavg()[0]:.1f}", file=sys.stderr, flush=True)
            if r["rc"] not in (0, 1) or not r["rows"]: print(r["tail"], file=sys.stderr)
    n = os.environ.get("ACCEPT_N_TRAIN", "0") if a.n_train is None else str(a.n_train)
    print(f"# {platform.processor() or platform.machine()}, {psutil.cpu_count()} cores "
          f"({len(os.sched_getaffinity(0))} usable), Python {platform.python_version()}; ACCEPT_N_TRAIN={n} "
          f"({'full data' if n == '0' else n + ' training images'}); {a.reps} repetition(s), variants in turn; "
          f"load average at the end {os.getloadavg()[0]:.1f}\n")
    ref = "original AIsaac" if "original AIsaac" in results else "hand"
    base = median([r["wall"] for r in results[ref]])
    base_cpu = median([r["cpu"] for r in results[ref]])
    print(f"| variant | wall s, each run | median wall s | wall ratio to {ref} | CPU s (all processes), median | "
          f"CPU ratio | peak RSS, largest process, MB | peak PSS, all processes, MB | processes | checks | "
          f"load average after each run |\n|---|---|---|---|---|---|---|---|---|---|---|")
    for name, rs in results.items():
        walls, cpus = [r["wall"] for r in rs], [r["cpu"] for r in rs]
        loads = ", ".join(f"{r['load']:.1f}" for r in rs)
        print(f"| {name} | {', '.join(f'{w:.1f}' for w in walls)} | {median(walls):.1f} | {median(walls) / base:.3f} | "
              f"{median(cpus):.1f} | {median(cpus) / base_cpu:.3f} | "
              f"{max(r['maxrss'] for r in rs) / 2**20:.0f} | {max(r['tree_pss'] for r in rs) / 2**20:.0f} | "
              f"{max(r['procs'] for r in rs)} | {rs[-1]['checks'] or '-'} | {loads} |")
    print("\nThe tables (train loss, valid loss, accuracy per epoch; first fit, then the CoreCBs fit), last repetition:\n")
    print("| variant | first fit | second fit |\n|---|---|---|")
    for name, rs in results.items():
        rows = rs[-1]["rows"]
        fmt = lambda rr: "<br>".join(" ".join(f"{v:.6f}" for v in r) for r in rr)
        print(f"| {name} | {fmt(rows[:3])} | {fmt(rows[3:6])} |")
    same = {name: [r["rows"] for r in rs] for name, rs in results.items()}
    for name, runs in same.items():
        if len(runs) > 1 and any(r != runs[0] for r in runs): print(f"\n{name}: the tables differ between repetitions")


def median(xs: list[float]) -> float:
    xs = sorted(xs)
    return (xs[(len(xs) - 1) // 2] + xs[len(xs) // 2]) / 2


# ---------------- --check: the new loaders give the old ones' batches, RNG draws and (at equal threads) table ----

def tutorial_data(acceptance: str, n_train: int | None):
    sys.path.insert(0, acceptance)
    import fashion_mnist
    import torchvision.transforms.functional as TF
    from AIsaac.data.transforms import inplace
    xmean, xstd = 0.28, 0.35

    @inplace
    def transformi(b): b['image'] = [(TF.to_tensor(o) - xmean) / xstd for o in b['image']]
    return fashion_mnist.dataset_dict(n_train=n_train).with_transform(transformi)


def old_loaders(dd):
    """What `DataLoaders.from_dataset_dict(dd, 64, num_workers=4)` built before this work: plain DataLoaders."""
    from torch.utils.data import DataLoader
    from AIsaac.data.columns import DictCollate
    from AIsaac.data.loaders import DataLoaders
    kw = dict(collate_fn=DictCollate(["image", "label"]), num_workers=4)
    return DataLoaders(DataLoader(dd["train"], batch_size=64, shuffle=True, **kw),
                       DataLoader(dd["test"], batch_size=128, shuffle=False, **kw))


def digests(dls, epochs: int) -> tuple[list[str], bytes]:
    """A digest of every batch of `epochs` (train pass, valid pass) as fit draws them, and the RNG state after."""
    import torch
    from AIsaac.runtime.rng import set_seed
    set_seed(42)
    out = []
    for _ in range(epochs):
        for dl in (dls.train, dls.valid):
            for xb, yb in dl: out.append(hashlib.sha1(xb.numpy().tobytes() + yb.numpy().tobytes()).hexdigest())
    return out, torch.get_rng_state().numpy().tobytes()


def first_fit(dls, threads: int | None):
    import contextlib, io
    import torch
    from torch import nn
    from torcheval.metrics import MulticlassAccuracy
    from AIsaac.all import BasicTrainCB, DeviceCB, MetricsCB, ProgressCB, Trainer, get_model_conv, set_seed
    before = torch.get_num_threads()
    if threads: torch.set_num_threads(threads)
    set_seed(42)
    trainer = Trainer(dls, nn.CrossEntropyLoss(), torch.optim.Adam, model=get_model_conv(),
                      callbacks=[BasicTrainCB(), MetricsCB(Accuracy=MulticlassAccuracy()), DeviceCB(), ProgressCB(bars=False)])
    with contextlib.redirect_stdout(io.StringIO()): trainer.fit()
    torch.set_num_threads(before)
    m = trainer.MetricsCB
    return [(l["train"], l["valid"], e["Accuracy"]) for l, e in zip(m.losses_epoch, m.metrics_epoch)]


def check(a) -> None:
    import torch
    sys.path.insert(0, str(ROOT))
    from AIsaac.data.loaders import DataLoaders
    n = a.n_train or None
    dd = tutorial_data(a.acceptance, n)
    new = DataLoaders.from_dataset_dict(dd, 64, num_workers=4)
    print(f"# from_dataset_dict(dd, 64, num_workers=4) on {len(os.sched_getaffinity(0))} usable cores: "
          f"{new.train.num_workers} worker(s), persistent {new.train.persistent_workers}, main threads "
          f"{new.train.main_threads} (torch's default {torch.get_num_threads()}); training images {len(dd['train'])}")
    old_d, old_rng = digests(old_loaders(dd), a.check_epochs)
    new_d, new_rng = digests(new, a.check_epochs)
    print(f"batches of {a.check_epochs} epochs (train and valid passes): {len(old_d)} before, {len(new_d)} now; "
          f"bit-identical: {old_d == new_d}; torch RNG state after them identical: {old_rng == new_rng}")
    if a.check_fits:
        t = new.train.main_threads
        fits = {f"before, torch's default threads ({torch.get_num_threads()})": first_fit(old_loaders(dd), None),
                f"before, {t} thread(s)": first_fit(old_loaders(dd), t),
                "now (from_dataset_dict)": first_fit(new, None)}
        print("\n| loaders | first fit's table (train, valid, accuracy per epoch) |\n|---|---|")
        for k, rows in fits.items(): print(f"| {k} | {'<br>'.join(' '.join(f'{v:.6f}' for v in r) for r in rows)} |")
        vals = list(fits.values())
        print(f"\nnow == before at {t} thread(s): {vals[2] == vals[1]}; now == before at torch's default: {vals[2] == vals[0]}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--acceptance", required=True, help="folder with seed_tutorial.py and fashion_mnist.py")
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--n-train", type=int, default=None, help="ACCEPT_N_TRAIN for the runs (0: full data)")
    ap.add_argument("--before", help="folder holding another AIsaac package to run beside this one")
    ap.add_argument("--original", help="folder holding the original AIsaac package")
    ap.add_argument("--original-python", default=sys.executable, help="a Python with the original's dependencies")
    ap.add_argument("--check", action="store_true", help="compare the new loaders' batches with the old ones' instead")
    ap.add_argument("--check-epochs", type=int, default=2)
    ap.add_argument("--check-fits", action="store_true", help="with --check: also the first fit's table, three ways")
    a = ap.parse_args()
    a.acceptance = os.path.abspath(a.acceptance)
    check(a) if a.check else bench(a)


if __name__ == "__main__":
    main()
