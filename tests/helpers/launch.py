"""Start the processes of a distributed test as a launcher would, each in its own process group, under a timeout.

On timeout every process group is killed (a hang in a collective then fails the test instead of stalling CI).
"""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def base_env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1",
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


def run_all(commands: list[tuple[list[str], dict[str, str]]], timeout: float) -> list[tuple[int | None, str, str]]:
    """Run the commands (argv, env) together; returns (returncode, stdout, stderr) for each, returncode None for one
    still running at the timeout (all are then killed, with their children)."""
    with tempfile.TemporaryDirectory() as tmp:
        files = [(open(Path(tmp) / f"{i}.out", "w+"), open(Path(tmp) / f"{i}.err", "w+")) for i in range(len(commands))]
        procs = [subprocess.Popen(argv, env=env, stdout=out, stderr=err, text=True, start_new_session=True, cwd=ROOT)
                 for (argv, env), (out, err) in zip(commands, files)]
        deadline = time.monotonic() + timeout
        try:
            for p in procs:
                with contextlib.suppress(subprocess.TimeoutExpired): p.wait(timeout=max(0.0, deadline - time.monotonic()))
        finally:
            codes = [p.poll() for p in procs]
            for p in procs:
                if p.poll() is None:
                    with contextlib.suppress(ProcessLookupError): os.killpg(p.pid, signal.SIGKILL)
                    p.wait()
        results = []
        for code, (out, err) in zip(codes, files):
            out.seek(0), err.seek(0)
            results.append((code, out.read(), err.read()))
            out.close(), err.close()
        return results


def run_pair(script: Path, args: list[str], timeout: float, n: int = 2) -> list[tuple[int | None, str, str]]:
    """`script args` as `n` processes of one job on this machine (RANK, WORLD_SIZE, ... set as torchrun sets them)."""
    env = {**base_env(), "WORLD_SIZE": str(n), "LOCAL_WORLD_SIZE": str(n), "MASTER_PORT": str(free_port())}
    return run_all([([sys.executable, str(script), *args], {**env, "RANK": str(r), "LOCAL_RANK": str(r)})
                    for r in range(n)], timeout)
