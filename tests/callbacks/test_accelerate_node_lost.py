"""A node lost in the middle of a fit: two `torchrun --nnodes 2 --nproc_per_node 1` launchers on this machine (as on
two machines); node 1 is SIGKILLed (launcher and worker) or frozen with SIGSTOP (as a machine cut off the network
looks). The survivor ends within a bound with a non-zero exit, and its output names the process and node it lost."""
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.launch import ROOT, base_env, free_port

pytest.importorskip("accelerate")

WORKER = Path(__file__).parents[1] / "helpers" / "dist_node_lost_worker.py"
READY_TIMEOUT = 120  # seconds for both launchers to start training (about 10 on 2 busy cores)
KILLED_BOUND = 60  # seconds the survivor may take to end after the kill (about 3: a closed connection is seen at once)
FROZEN_TIMEOUT = 5  # AccelerateCB(timeout=...) for the frozen node: the survivor waits that long in its vote, then ends
FROZEN_BOUND = 45


def children(pid):
    """The processes whose parent is `pid` (torchrun starts its worker in a session of its own)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid: found.append(int(stat.parent.name))
    return found


def kill_groups(pids):
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError): os.killpg(pid, signal.SIGKILL)


@contextlib.contextmanager
def two_nodes(out, *worker_args):
    """Start the two launchers, each in its own session; on the way out, kill every process group still there."""
    port, workers, launchers = free_port(), set(), []
    with contextlib.ExitStack() as files:
        try:
            for r in (0, 1):
                err = files.enter_context(open(out / f"node{r}.err", "w"))
                launchers.append(subprocess.Popen(
                    [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "1",
                     "--node_rank", str(r), "--master_addr", "127.0.0.1", "--master_port", str(port), str(WORKER),
                     str(out), *worker_args],
                    env=base_env(), cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL, stderr=err))
            yield launchers, workers
        finally:
            for p in launchers: workers.update(children(p.pid))
            kill_groups([*workers, *(p.pid for p in launchers)])
            for p in launchers: p.wait()


def wait_ready(out, launchers, workers):
    deadline = time.monotonic() + READY_TIMEOUT
    while not all((out / f"ready{r}").exists() and (out / f"ready{r}").read_text() for r in (0, 1)):
        assert time.monotonic() < deadline and all(p.poll() is None for p in launchers), \
            "\n".join((out / f"node{r}.err").read_text()[-3000:] for r in (0, 1))
        time.sleep(0.05)
    workers.update(int((out / f"ready{r}").read_text()) for r in (0, 1))
    return int((out / "ready1").read_text())


def survivor_ends(launcher, bound):
    start = time.monotonic()
    with contextlib.suppress(subprocess.TimeoutExpired): launcher.wait(timeout=bound)
    return launcher.poll(), time.monotonic() - start


def test_a_killed_node_ends_the_survivor_soon_naming_the_lost_process(tmp_path):
    with two_nodes(tmp_path) as (launchers, workers):
        worker1 = wait_ready(tmp_path, launchers, workers)
        kill_groups([launchers[1].pid, worker1])  # the whole node: its launcher, and its worker's own session
        code, seconds = survivor_ends(launchers[0], KILLED_BOUND)
    err = (tmp_path / "node0.err").read_text()
    assert code not in (None, 0), f"the survivor {'still ran' if code is None else 'exited 0'}:\n{err[-3000:]}"
    assert seconds < KILLED_BOUND
    assert ("ProcessLostError: Lost process 1 of 2 (node 1): it broke the connection while process 0 (this one, "
            "node 0) waited for it in the processes' stop vote") in err, err[-3000:]
    assert "AccelerateCB failed at event 'backward' (epoch 1, batch 3, training)" in err


def test_a_frozen_node_ends_the_survivor_after_the_timeout_naming_the_lost_process(tmp_path):
    with two_nodes(tmp_path, str(FROZEN_TIMEOUT)) as (launchers, workers):
        worker1 = wait_ready(tmp_path, launchers, workers)
        for pid in (launchers[1].pid, worker1): os.killpg(pid, signal.SIGSTOP)  # alive, connected, silent
        code, seconds = survivor_ends(launchers[0], FROZEN_BOUND)
    err = (tmp_path / "node0.err").read_text()
    assert code not in (None, 0), f"the survivor {'still ran' if code is None else 'exited 0'}:\n{err[-3000:]}"
    assert seconds < FROZEN_BOUND  # (its wait began in the vote, before the freeze: it can end sooner than the timeout)
    assert ("ProcessLostError: Lost process 1 of 2 (node 1): it did not answer while process 0 (this one, node 0) "
            "waited for it in the processes' stop vote") in err, err[-3000:]
