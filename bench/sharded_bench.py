"""Sharded save of a meta-initialized FSDP2 model: the full gather to process 0 (the path before sharded checkpoints:
`model_state` and `opt_state` with `full_state_dict=True`, then one `torch.save` on process 0) against every process
writing its own shards with `torch.distributed.checkpoint` (`sharded_state` + `dcp.async_save`, what CheckpointCB
does for a sharded model), on 2 and 4 CPU processes (gloo).

Each (processes, path) runs in fresh processes: the model (16 Linear(2048, 2048) layers, 67M parameters, built under
`torch.device("meta")`, sharded layer by layer and `materialize`d, so no process ever holds it whole) takes one Adam
step (its state is then 3 x 268 MB), then one save is timed. Reported per process: the stall (how long the training
loop is held: for the full gather, until every process has passed the save; for DCP, until `async_save` returns), the
time until the checkpoint is complete, and the peak RSS during the save (VmHWM, reset just before it) over the RSS before it. Ratios are full gather / DCP.

Usage: python bench/sharded_bench.py [--processes 2 4] [--layers 16] [--log bench/logs/sharded_bench.log]
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # this checkout's AIsaac


def rss_mb() -> float:
    with open("/proc/self/statm") as f: return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def reset_peak() -> None:
    """Start the peak RSS (VmHWM) afresh from the current RSS (Linux: /proc/self/clear_refs)."""
    with open("/proc/self/clear_refs", "w") as f: f.write("5")


def peak_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024


def worker(path: str, folder: Path, layers: int) -> None:
    import torch
    import torch.distributed as dist
    import torch.distributed.checkpoint as dcp
    from torch import nn
    from torch.distributed.fsdp import fully_shard
    from AIsaac.all import materialize
    from AIsaac.runtime.checkpoint_file import save_checkpoint
    from AIsaac.runtime.model_state import model_state, opt_state
    from AIsaac.runtime.sharded_checkpoint import sharded_state
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    with torch.device("meta"): model = nn.Sequential(*[nn.Linear(2048, 2048) for _ in range(layers)])
    for layer in model: fully_shard(layer)
    fully_shard(model)
    materialize(model, device="cpu")
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    model(torch.randn(8, 2048)).sum().backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    group = dist.new_group(backend="gloo")  # CheckpointCB's writer makes one of its own too (not timed)
    ctypes.CDLL("libc.so.6").malloc_trim(0)  # freed heap back to the system: RSS before = the memory in use
    dist.barrier()
    before, n_params = rss_mb(), sum(p.numel() for p in model.parameters())
    reset_peak()
    t0 = time.perf_counter()
    if path == "full":
        state = {"model": model_state(model), "opt": opt_state(model, opt)}  # process 0 gets the whole state
        if rank == 0: save_checkpoint(state, folder / "full.pt")
        del state
        dist.barrier()  # every process waits for process 0's write: CheckpointCB's next collective
        stall = done = time.perf_counter() - t0
    else:
        future = dcp.async_save(sharded_state(model, {"opt": opt}), checkpoint_id=folder / "dcp", process_group=group)
        stall = time.perf_counter() - t0
        getattr(future, "upload_completion", future).result()
        done = time.perf_counter() - t0
    row = {"rank": rank, "stall_s": stall, "done_s": done, "rss_before_mb": before, "peak_mb": peak_mb(),
           "params": n_params}
    rows = [None] * dist.get_world_size()
    dist.all_gather_object(rows, row)
    if rank == 0: print("ROWS " + json.dumps(rows), flush=True)
    dist.barrier()
    dist.destroy_process_group()
    sys.stdout.flush()
    os._exit(0)  # see tests/helpers/dist_fsdp_worker.py: no interpreter shutdown under a live gloo group


def launch(n: int, path: str, layers: int) -> list[dict]:
    from tests.helpers.launch import run_pair
    folder = Path(tempfile.mkdtemp(prefix="sharded_bench."))
    try:
        results = run_pair(Path(__file__), ["--worker", path, "--folder", str(folder), "--layers", str(layers)],
                           timeout=600, n=n)
    finally: shutil.rmtree(folder, ignore_errors=True)
    for r, (code, out, err) in enumerate(results):
        if code != 0: raise RuntimeError(f"{n} processes, {path}: process {r} exited {code}\n{err[-3000:]}")
    line = next(l for l in results[0][1].splitlines() if l.startswith("ROWS "))
    return json.loads(line[5:])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--processes", type=int, nargs="+", default=[2, 4])
    p.add_argument("--layers", type=int, default=16)
    p.add_argument("--log")
    p.add_argument("--worker"), p.add_argument("--folder")
    a = p.parse_args()
    if a.worker: return worker(a.worker, Path(a.folder), a.layers)
    import torch
    lines = [f"# bench/sharded_bench.py --layers {a.layers}: torch {torch.__version__}, {os.cpu_count()} cores, "
             f"load average {os.getloadavg()[0]:.1f} at the start, {time.strftime('%Y-%m-%d')}"]
    for n in a.processes:
        res = {path: launch(n, path, a.layers) for path in ("full", "dcp")}
        lines.append(f"\n## {n} processes, {res['full'][0]['params'] / 1e6:.1f}M parameters, Adam (state 3x the weights)")
        lines.append("| process | path | stall s | complete s | RSS before MB | peak RSS MB | peak - before MB |")
        lines.append("|---|---|---|---|---|---|---|")
        for path in ("full", "dcp"):
            for r in res[path]:
                lines.append(f"| {r['rank']} | {'full gather' if path == 'full' else 'DCP async'} | {r['stall_s']:.2f} "
                             f"| {r['done_s']:.2f} | {r['rss_before_mb']:.0f} | {r['peak_mb']:.0f} "
                             f"| {r['peak_mb'] - r['rss_before_mb']:.0f} |")
        f, d = res["full"], res["dcp"]
        grow = [(x["peak_mb"] - x["rss_before_mb"]) for x in f], [(x["peak_mb"] - x["rss_before_mb"]) for x in d]
        lines.append(f"\nratios full gather / DCP: stall {max(x['stall_s'] for x in f) / max(x['stall_s'] for x in d):.1f}x, "
                     f"complete {max(x['done_s'] for x in f) / max(x['done_s'] for x in d):.2f}x, "
                     f"process 0's peak RSS {f[0]['peak_mb'] / d[0]['peak_mb']:.2f}x "
                     f"(its growth during the save {grow[0][0]:.0f} MB against {grow[1][0]:.0f} MB, "
                     f"{grow[0][0] / max(grow[1][0], 1):.1f}x), "
                     f"largest peak RSS of any process {max(x['peak_mb'] for x in f) / max(x['peak_mb'] for x in d):.2f}x")
    text = "\n".join(lines)
    print(text)
    if a.log: Path(a.log).write_text(text + "\n")


if __name__ == "__main__":
    main()
