"""Several machines: two `torchrun --nnodes 2 --nproc_per_node 1` launchers meeting through a c10d rendezvous on
127.0.0.1 (two nodes on one machine) train exactly as two processes on one node."""
import json
import sys
from pathlib import Path

import pytest
import torch

from tests.helpers.launch import base_env, free_port, run_all

pytest.importorskip("accelerate")

WORKER = Path(__file__).parents[1] / "helpers" / "dist_nodes_worker.py"
TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]


def results(out):
    return [(json.loads((out / f"rank{r}.json").read_text()), torch.load(out / f"rank{r}.pt")) for r in (0, 1)]


def check(runs):
    for r, (code, _, err) in enumerate(runs): assert code == 0, f"launcher {r}: {code}\n{err[-3000:]}"


@pytest.fixture(scope="module")
def launches(tmp_path_factory):
    one, two = tmp_path_factory.mktemp("one_node"), tmp_path_factory.mktemp("two_nodes")
    env = base_env()
    check(run_all([(TORCHRUN + ["--nnodes", "1", "--nproc_per_node", "2", "--rdzv_backend", "c10d",
                                "--rdzv_endpoint", f"127.0.0.1:{free_port()}", str(WORKER), str(one)], env)],
                  timeout=180))
    endpoint = f"127.0.0.1:{free_port()}"
    node = TORCHRUN + ["--nnodes", "2", "--nproc_per_node", "1", "--rdzv_backend", "c10d", "--rdzv_id", "aisaac-test",
                       "--rdzv_endpoint", endpoint, str(WORKER), str(two)]
    check(run_all([(node, env), (node, env)], timeout=180))  # two launchers, as on two machines
    return results(one), results(two), one


def test_file_writers_write_once_and_save_best_agrees_on_every_process(launches):
    runs, _, folder = launches[0], launches[1], launches[2]
    rows = (folder / "history.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,train,valid,accuracy") and len(rows) == 4  # one writer: a header, 3 rows
    assert [float(r.split(",")[2]) for r in rows[1:]] == pytest.approx([e["valid"] for e in runs[0][0]["losses"]])
    assert len(list((folder / "tb").glob("events.out.tfevents.*"))) == 1
    best = torch.load(folder / "best.pt", weights_only=True)["model"]  # the file trainer.load reads
    valid = [e["valid"] for e in runs[0][0]["losses"]]
    for rep, weights in runs:  # both processes restored the same best epoch's weights, the file's
        assert rep["best_epoch"] == valid.index(min(valid))
        assert all(torch.equal(weights[k], best[k]) for k in best)


def test_two_nodes_were_two_launchers_of_one_process_each(launches):
    one, two, _ = launches
    assert sorted(r[0]["group_rank"] for r in two) == ["0", "1"] and all(r[0]["local_world_size"] == "1" for r in two)
    assert all(r[0]["local_world_size"] == "2" for r in one)
    assert [r[0]["process_index"] for r in one + two] == [0, 1, 0, 1] and all(r[0]["num_processes"] == 2 for r in one + two)


def test_two_nodes_train_exactly_as_one_node_with_two_processes(launches):
    one, two, _ = launches
    for (rep1, w1), (rep2, w2) in zip(one, two):
        assert rep1["losses"] == rep2["losses"] and rep1["metrics"] == rep2["metrics"]
        assert w1.keys() == w2.keys() and all(torch.equal(w1[k], w2[k]) for k in w1)
    assert all(torch.equal(one[0][1][k], one[1][1][k]) for k in one[0][1])  # and the processes agree
