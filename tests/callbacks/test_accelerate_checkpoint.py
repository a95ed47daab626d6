"""Checkpoints across processes: a two-process fit ended by an error on one process resumes on two processes with
bit-identical final weights; the checkpoint loads into one process (weights; resume from an epoch boundary, and
mid-epoch: the rest of the interrupted epoch, see AIsaac.runtime.elastic)."""
import functools
import importlib.util
import json
import re
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, IterableDataset

from AIsaac.all import BasicTrainCB, CheckpointCB, DataLoaders, MetricsCB, Trainer, read_checkpoint
from AIsaac.exceptions import CheckpointError
from AIsaac.runtime.rng import set_rng_state
from tests.helpers.launch import run_pair
from tests.helpers.resume_run import NoisyData

pytest.importorskip("accelerate")

WORKER = Path(__file__).parents[1] / "helpers" / "dist_resume_worker.py"
_spec = importlib.util.spec_from_file_location("dist_resume_worker", WORKER)
worker = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(worker)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("resume2")
    results = run_pair(WORKER, [str(out)], timeout=300)
    for r, (code, _, err) in enumerate(results): assert code == 0, f"process {r}: {code}\n{err[-3000:]}"
    return out, [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]


def load(out, name): return torch.load(out / f"{name}.pt", weights_only=True)


def plain(name):
    """A checkpoint's file name without its run id: checkpoint-e1-b4-<run>.pt -> checkpoint-e1-b4.pt."""
    return re.sub(r"-[0-9a-f]+\.pt$", ".pt", name)


def ckpt(out, e, b): return next((out / "ckpt").glob(f"checkpoint-e{e}-b{b}-*.pt"))


def assert_equal_states(a, b):
    assert a.keys() == b.keys()
    for k in a: assert torch.equal(a[k], b[k]), k


def test_resume_on_two_processes_is_bit_exact(run):
    out, reports = run
    assert "ProcessStopError: process 1 failed" in reports[0]["crash_error"]  # the fit really was cut short
    for r in (0, 1): assert_equal_states(load(out, f"resumed_rank{r}"), load(out, f"full_rank{r}"))
    assert_equal_states(load(out, "full_rank0"), load(out, "full_rank1"))


def test_only_the_main_process_writes_the_unwrapped_model_and_every_process_rng(run):
    out, reports = run
    e, b = worker.CRASH_AT
    # every EVERY batches and at each epoch end, once each (one writer), up to the last save before the crash
    assert [plain(n) for n in reports[0]["files_after_crash"]] == [plain(n) for n in reports[1]["files_after_crash"]] == [
        "checkpoint-e0-b2.pt", "checkpoint-e0-b4.pt", "checkpoint-e0-b6.pt", "checkpoint-e1-b0.pt",
        "checkpoint-e1-b2.pt", "checkpoint-e1-b4.pt"]
    state = read_checkpoint(ckpt(out, e, b))
    assert list(state["model"]) == ["0.weight", "0.bias", "3.weight", "3.bias"]  # no DDP "module." prefix
    p0, p1 = state["processes"]
    assert not torch.equal(p0["rng"]["torch"], p1["rng"]["torch"])  # each process's own (seeded apart)
    assert torch.equal(p0["rng"]["torch"], state["rng"]["torch"]) and state["position"]["batch"] == b


def one_process_trainer(tmp_path):
    torch.manual_seed(99)  # other weights than the checkpoint's, so that loading shows
    dls = DataLoaders(DataLoader(NoisyData(worker.N_TRAIN), batch_size=worker.BS, shuffle=True),
                      DataLoader(NoisyData(12), batch_size=worker.BS))
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Dropout(0.3), nn.Linear(8, 3))
    return Trainer(dls, nn.CrossEntropyLoss(), functools.partial(torch.optim.SGD, momentum=0.9), model,
                   [BasicTrainCB(), MetricsCB(), CheckpointCB(tmp_path / "ckpt1")])


def test_the_weights_load_into_one_process_for_evaluation(run):
    out, _ = run
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Dropout(0.3), nn.Linear(8, 3))
    model.load_state_dict(read_checkpoint(ckpt(out, 1, 0))["model"])
    assert_equal_states(model.state_dict(), load(out, "epoch0_rank0"))  # the two-process weights after epoch 0


def test_one_process_resumes_from_an_epoch_boundary_like_plain_pytorch(run, tmp_path):
    out, _ = run
    path = ckpt(out, 1, 0)
    trainer = one_process_trainer(tmp_path)
    # continues with epoch 1, process 0's random streams (without AccelerateCB and for 2 epochs of the 3: allowed)
    trainer.fit(2, lr=0.05, resume_from=path, allow_changes=("callbacks", "n_epochs"))
    # by hand: the checkpoint's weights, momentum and process-0 RNG, one epoch of the same loop
    state = read_checkpoint(path)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Dropout(0.3), nn.Linear(8, 3))
    model.load_state_dict(state["model"])
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    opt.load_state_dict(state["opts"]["opt"])
    set_rng_state(state["rng"])
    for x, y in DataLoader(NoisyData(worker.N_TRAIN), batch_size=worker.BS, shuffle=True):
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        opt.zero_grad()
    assert_equal_states(trainer.model.state_dict(), model.state_dict())


def test_a_mid_epoch_checkpoint_of_two_processes_resumes_in_one_like_plain_pytorch(run, tmp_path):
    out, _ = run
    path = ckpt(out, 1, 4)
    trainer = one_process_trainer(tmp_path)
    trainer.fit(worker.N_EPOCHS, lr=0.05, resume_from=path, allow_changes=("callbacks",), valid=False)
    # by hand: epoch 1's order from the sampler generator's state it began with (Accelerate's, synchronised from
    # process 0), the 2 x 4 batches of 4 the two processes trained on dropped, the rest in batches of 4 on process
    # 0's random streams; then epoch 2 as a plain one-process loader shuffles it
    state = read_checkpoint(path)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Dropout(0.3), nn.Linear(8, 3))
    model.load_state_dict(state["model"])
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    opt.load_state_dict(state["opts"]["opt"])
    g = torch.Generator()
    g.set_state(state["position"]["loader_rng"]["generators"][0])
    rest = torch.randperm(worker.N_TRAIN, generator=g)[2 * 4 * worker.BS:].tolist()
    set_rng_state(state["rng"])
    epoch1 = DataLoader(NoisyData(worker.N_TRAIN), batch_sampler=[rest[i:i + worker.BS]
                                                                  for i in range(0, len(rest), worker.BS)])
    epoch2 = DataLoader(NoisyData(worker.N_TRAIN), batch_size=worker.BS, shuffle=True)
    for dl in (epoch1, epoch2):
        for x, y in dl:
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
            opt.zero_grad()
    assert_equal_states(trainer.model.state_dict(), model.state_dict())


class Stream(IterableDataset):
    def __iter__(self): return (NoisyData(worker.N_TRAIN)[i] for i in range(worker.N_TRAIN))


def test_a_mid_epoch_checkpoint_on_another_number_is_refused_for_a_stream(run, tmp_path):
    out, _ = run
    trainer = one_process_trainer(tmp_path)
    trainer.dls = DataLoaders(DataLoader(Stream(), batch_size=worker.BS), None)
    before = [p.detach().clone() for p in trainer.model.parameters()]
    with pytest.raises(CheckpointError, match=r"resumes mid-epoch only on 2 process\(es\) \(this fit has 1\) when the "
                                              r"train loader streams an IterableDataset"):
        trainer.fit(worker.N_EPOCHS, lr=0.05, resume_from=ckpt(out, 1, 4), allow_changes=("callbacks", "batch_size"))
    assert all(torch.equal(a, b) for a, b in zip(before, trainer.model.parameters()))  # nothing was loaded
