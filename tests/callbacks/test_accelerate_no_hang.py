"""No hang, anywhere: at every event, in either phase, rank 0 or rank 1 alone raises an error or a cancel; every
process ends within a bounded time and the error is shown once. One pair of gloo processes runs the whole grid."""
import importlib.util
import json
from pathlib import Path

import pytest

from tests.helpers.launch import run_pair

pytest.importorskip("accelerate")

WORKER = Path(__file__).parents[1] / "helpers" / "dist_grid_worker.py"
_spec = importlib.util.spec_from_file_location("dist_grid_worker", WORKER)
worker = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(worker)

GRID_TIMEOUT = 480  # seconds for the whole grid (about 2 minutes on 2 busy cores); each group is killed after it
SCENARIO_BOUND = 20  # seconds any one scenario may take on either process


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    out = tmp_path_factory.mktemp("grid")
    results = run_pair(WORKER, [str(out)], timeout=GRID_TIMEOUT)
    rows = []
    for r in (0, 1):
        f = out / f"rank{r}.jsonl"
        rows.append([json.loads(line) for line in f.read_text().splitlines()] if f.exists() else [])
    return results, rows


def test_every_scenario_ends_on_both_processes_within_the_bound(grid):
    results, rows = grid
    expected = [worker.scenario_name(*s) for s in worker.scenarios()]
    for r, (code, _, err) in enumerate(results):
        done = [row["scenario"] for row in rows[r]]
        hung = expected[len(done)] if len(done) < len(expected) else None
        assert code == 0, f"process {r} {'hung in ' + hung if code is None else f'exited {code}'}:\n{err[-3000:]}"
        assert done == expected + ["plain fit after the grid"]
    assert len(expected) == 136  # 24 places x 2 ranks x (error, cancel_fit, cancel_level except at fit events)
    slow = [(a["scenario"], a["seconds"], b["seconds"]) for a, b in zip(*rows)
            if max(a["seconds"], b["seconds"]) > SCENARIO_BOUND]
    assert not slow


def test_an_error_or_cancel_anywhere_ends_both_the_same_way(grid):
    _, rows = grid
    for a, b in zip(*rows[:2]):
        if a["scenario"] == "plain fit after the grid": continue
        r = a["raiser"]
        raiser, other = (a, b) if r == 0 else (b, a)
        name, error = a["scenario"], raiser["error"]
        if a["kind"] == "error":  # the raising process shows its own error, not a stop relayed from elsewhere
            assert error and f"ValueError: boom at {a['event']} on rank {r}" in error and "ProcessStopError" not in error, name
        if error is None:  # a cancel the processes agreed on: both stop at the same step, with equal weights
            assert other["error"] is None and raiser["steps"] == other["steps"], name
            assert raiser["weights"] == other["weights"], name
        elif a["event"] == "cleanup_fit":
            # After the fit's last vote (AccelerateCB's cleanup_fit runs first): the others have finished.
            assert other["error"] is None, name
        else:  # the other process stops with the error, shown once, saying where it came from
            assert other["error"].count(f"ProcessStopError: process {r} failed: {error}") == 1, name
            assert raiser["steps"] == other["steps"], name


def test_the_process_group_still_works_after_the_grid(grid):
    _, rows = grid
    last = [r[-1] for r in rows]
    assert all(x["error"] is None and x["steps"] == 6 for x in last) and last[0]["weights"] == last[1]["weights"]
