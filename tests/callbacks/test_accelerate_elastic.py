"""Elastic resume across real processes (two gloo CPU processes, tests/helpers/dist_elastic_worker.py): a mid-epoch
checkpoint of two processes resumes on one, and one of one process on two; the samples trained on before the
checkpoint and those of the resumed epoch are the epoch, each once; the next epoch is a full normal one."""
import importlib.util
import json
from pathlib import Path

import pytest
import torch

from AIsaac.all import read_checkpoint
from tests.helpers.launch import run_pair

pytest.importorskip("accelerate")

WORKER = Path(__file__).parents[1] / "helpers" / "dist_elastic_worker.py"
_spec = importlib.util.spec_from_file_location("dist_elastic_worker", WORKER)
worker = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(worker)
ALL = list(range(worker.N_TRAIN))


def launch(mode, out, n):
    results = run_pair(WORKER, [mode, str(out)], timeout=90, n=n)
    for r, (code, _, err) in enumerate(results): assert code == 0, f"{mode}, process {r}: {code}\n{err[-3000:]}"
    return [json.loads((out / f"{mode}_rank{r}.json").read_text()) for r in range(n)]


def newest_position(out):
    """The position of the checkpoint the resume starts from: the newest the interrupted fit wrote."""
    return read_checkpoint(out / "ckpt")["position"]


def ids(reports, fit, epoch, before=None):
    """The sample ids `fit` trained on in `epoch` over all processes (only batches before `before`), in order."""
    return [i for r in reports for e, b, batch in r[fit]["records"]
            if e == epoch and (before is None or b < before) for i in batch]


def by_batch(report, fit, epoch):
    return [batch for e, _, batch in report[fit]["records"] if e == epoch]


@pytest.fixture(scope="module")
def two_to_one(tmp_path_factory):
    out = tmp_path_factory.mktemp("elastic21")
    saved = launch("save", out, 2)
    position = newest_position(out)  # read before the resume writes its own checkpoints there
    return saved, position, launch("resume", out, 1)


def test_two_processes_resume_on_one_each_sample_of_the_epoch_once(two_to_one):
    saved, position, resumed = two_to_one
    assert "process 1 failed" in saved[0]["crashed"]["error"]
    assert "error" not in resumed[0]["resumed"], resumed[0]["resumed"]["error"]
    epoch, done = position["epoch"], position["batch"]
    assert (epoch, done) == (1, 2) and 0 < done < 6  # mid-epoch, before the crash at batch 3
    before, after = ids(saved, "crashed", epoch, before=done), ids(resumed, "resumed", epoch)
    assert len(before) == 2 * done * worker.BS
    assert sorted(before + after) == ALL  # every sample of the epoch once
    assert [len(b) for b in by_batch(resumed[0], "resumed", epoch)] == [4, 4, 4, 4, 4, 4, 2]  # the last one short
    # The order: the rest of the epoch's global order as the uninterrupted two-process fit dealt it
    full = [[batch for batch in by_batch(r, "full", epoch)] for r in saved]
    order = [i for t in range(len(full[0])) for p in (0, 1) for i in full[p][t]][:worker.N_TRAIN]
    assert after == order[len(before):]


def test_after_the_resumed_epoch_one_process_runs_a_full_epoch_in_the_two_process_order(two_to_one):
    saved, _, resumed = two_to_one
    assert ids(resumed, "resumed", 2) == [i for t in range(6) for p in (0, 1)
                                          for i in by_batch(saved[p], "full", 2)[t]][:worker.N_TRAIN]
    assert sorted(ids(resumed, "resumed", 2)) == ALL


def test_one_process_resumes_on_two_each_sample_of_the_epoch_once(tmp_path):
    saved = launch("save1", tmp_path, 1)
    position = newest_position(tmp_path)
    epoch, done = position["epoch"], position["batch"]
    assert epoch == 1 and 0 < done <= worker.CANCEL_AT[1]
    resumed = launch("resume", tmp_path, 2)
    for r in resumed: assert "error" not in r["resumed"], r["resumed"]["error"]
    before, after = ids(saved, "crashed", epoch, before=done), ids(resumed, "resumed", epoch)
    assert sorted(before + after) == ALL
    # as many batches on each process (DDP steps together), each batch at most the batch size
    sizes = [[len(b) for b in by_batch(r, "resumed", epoch)] for r in resumed]
    assert len(sizes[0]) == len(sizes[1]) and max(max(s) for s in sizes) <= worker.BS
    # the next epoch: Accelerate's normal two-process epoch (its even_batches repeats a few samples at the end)
    nxt = ids(resumed, "resumed", epoch + 1)
    assert set(nxt) == set(ALL) and len(nxt) == 2 * 6 * worker.BS
    # a checkpoint written in the resumed epoch says how its batches were dealt (it resumes on any number too)
    periodic = done + worker.EVERY - done % worker.EVERY  # the first periodic checkpoint of the resumed epoch
    state = torch.load(next((tmp_path / "ckpt").glob(f"checkpoint-e{epoch}-b{periodic}-*.pt")), weights_only=True)
    assert state["position"]["loader_rng"]["dealt"] == [[1, done]]
