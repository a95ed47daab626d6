"""AccelerateCB: on one process against plain PyTorch, and on two CPU processes (gloo) started as a real launch."""
import importlib.util
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from AIsaac.callback import Callback
from AIsaac.callbacks.accelerate import AccelerateCB
from AIsaac.callbacks.basic_train import BasicTrainCB
from AIsaac.callbacks.device import DeviceCB
from AIsaac.callbacks.metrics import MetricsCB
from AIsaac.callbacks.progress import ProgressCB
from AIsaac.data.loaders import DataLoaders
from AIsaac.runtime.distributed import (AcceleratedProcesses, BATCH, EPOCH, ERROR, FIT, OK, ProcessLostError, ProcessStopError, stop_code,
                                stop_exception)
from AIsaac.exceptions import (CallbackError, CallbackSetupError, CancelBatchException,
                               CancelEpochException, CancelFitException)
from AIsaac.callbacks.metrics import Accuracy
from AIsaac.trainer import Trainer


pytest.importorskip("accelerate")

WORKER = Path(__file__).parents[1] / "helpers" / "accelerate_worker.py"  # the script each of the two processes runs
ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("accelerate_worker", WORKER)
worker = importlib.util.module_from_spec(_spec)  # for its data and sizes
_spec.loader.exec_module(worker)

# ---- one process ----
def tiny_data(shuffle=False):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(24, 4, generator=g)
    y = (x[:, 0] > 0).long()
    return DataLoaders(DataLoader(TensorDataset(x[:16], y[:16]), batch_size=4, shuffle=shuffle),
                       DataLoader(TensorDataset(x[16:], y[16:]), batch_size=4))


def test_one_process_trains_like_plain_pytorch():
    dls = tiny_data()
    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    ref = nn.Linear(4, 2)
    ref.load_state_dict(model.state_dict())
    trainer = Trainer(dls, F.cross_entropy, torch.optim.SGD, model, [AccelerateCB(cpu=True), BasicTrainCB()])
    trainer.fit(2, lr=0.1)
    opt = torch.optim.SGD(ref.parameters(), lr=0.1)
    for _ in range(2):
        for x, y in dls.train:
            F.cross_entropy(ref(x), y).backward()
            opt.step()
            opt.zero_grad()
    for k, v in ref.state_dict().items(): torch.testing.assert_close(model.state_dict()[k], v)


def test_fit_restores_model_optimizer_and_loaders_and_fits_again():
    dls = tiny_data(shuffle=True)
    train, valid = dls.train, dls.valid
    model = nn.Linear(4, 2)
    seen = []

    class Spy(Callback):
        def before_fit(self, t): seen.append((t.model, t.opt, t.dls))

    trainer = Trainer(dls, F.cross_entropy, torch.optim.SGD, model,
                      [AccelerateCB(cpu=True), DeviceCB('cpu'), BasicTrainCB(), MetricsCB(accuracy=Accuracy()), Spy()])
    for _ in range(2):
        trainer.fit(1, lr=0.1)
        assert trainer.model is model and type(trainer.opt) is torch.optim.SGD and trainer.dls is dls
        assert dls.train is train and dls.valid is valid  # the user's DataLoaders is left as it was
    assert seen[0][2] is not dls and seen[0][2].train is not train  # during the fit: the prepared loaders
    assert trainer.is_main_process and trainer.num_processes == 1
    assert len(trainer.MetricsCB.losses_epoch) == 2


def test_one_process_is_the_main_process_and_prints_the_table(capsys):
    trainer = Trainer(tiny_data(), F.cross_entropy, torch.optim.SGD, nn.Linear(4, 2),
                      [AccelerateCB(cpu=True), BasicTrainCB(), MetricsCB(), ProgressCB(bars=False)])
    trainer.fit(2, lr=0.1)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ['epoch', 'train', 'valid'] and len(lines) == 3


def test_a_cuda_device_cb_on_a_cpu_launch_is_a_clear_error():
    model = nn.Linear(4, 2)
    trainer = Trainer(tiny_data(), F.cross_entropy, torch.optim.SGD, model,
                      [AccelerateCB(cpu=True), DeviceCB('cuda'), BasicTrainCB()])
    with pytest.raises(CallbackError, match=r"DeviceCB puts the model and batches on cuda but .* runs on cpu"):
        trainer.fit(1)
    assert trainer.model is model


def test_fp16_on_cpu_and_bad_arguments_are_clear_errors():
    trainer = Trainer(tiny_data(), F.cross_entropy, torch.optim.SGD, nn.Linear(4, 2),
                      [AccelerateCB('fp16', cpu=True), BasicTrainCB()])
    with pytest.raises(CallbackError, match="fp16.*needs a GPU.*use 'bf16'"): trainer.fit(1)
    with pytest.raises(ValueError, match="mixed_precision must be one of"): AccelerateCB('fp8')
    with pytest.raises(ValueError, match="claims 'step'"): AccelerateCB(gradient_accumulation_steps=2)
    with pytest.raises(ValueError, match="even_batches"): AccelerateCB(even_batches=False)


def test_a_second_backward_claim_is_refused():
    class OtherBackward(Callback):
        claims = ('backward',)
        def backward(self, t): t.loss.backward()

    with pytest.raises(CallbackSetupError, match="both claim the step phase 'backward'"):
        Trainer(tiny_data(), F.cross_entropy, torch.optim.SGD, nn.Linear(4, 2), [AccelerateCB(), OtherBackward()])


def test_stop_codes():
    assert [stop_code(e) for e in (None, CancelBatchException(), CancelEpochException(), CancelFitException(),
                                   KeyError())] == [OK, BATCH, EPOCH, FIT, ERROR]
    assert stop_code(CancelBatchException(), EPOCH) == ERROR  # escaped its batch: nothing can catch it any more
    assert type(stop_exception(EPOCH)) is CancelEpochException
    e = stop_exception(ERROR, ["", "ValueError: boom"])
    assert isinstance(e, ProcessStopError) and str(e) == "process 1 failed: ValueError: boom"


# ---- two processes ----
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two(tmp_path_factory):
    """Both processes' reports and printed output (the launch torchrun would do, by hand, to keep outputs apart)."""
    out = tmp_path_factory.mktemp("dist")
    env = {**os.environ, "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": str(free_port()), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    procs = [subprocess.Popen([sys.executable, str(WORKER), str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env={**env, "RANK": str(r), "LOCAL_RANK": str(r)}, text=True) for r in (0, 1)]
    try: outputs = [p.communicate(timeout=150) for p in procs]  # a hang in a collective fails here, not forever
    finally:
        for p in procs:
            if p.poll() is None: p.kill()
    for p, (_, err) in zip(procs, outputs): assert p.returncode == 0, err[-3000:]
    return {'out': out, 'stdout': [o for o, _ in outputs],
            'report': [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]}


def weights(two, rank, name): return torch.load(two['out'] / f"rank{rank}_{name}.pt")


def assert_same_weights(a, b):
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_each_training_sample_seen_once_per_epoch_across_processes(two):
    r0, r1 = (r['train'] for r in two['report'])
    assert r0['error'] is None and r1['error'] is None
    for p0, p1 in zip(r0['seen'], r1['seen']):
        if p0['training']: assert sorted(p0['idx'] + p1['idx']) == list(range(worker.N_TRAIN))
        else:  # validation batches arrive gathered: every process sees every validation sample, once
            for p in (p0, p1): assert sorted(p['idx']) == list(range(worker.N_TRAIN, worker.N_TRAIN + worker.N_VALID))
    assert r0['steps'] == r1['steps'] == 2 * worker.N_TRAIN // (2 * worker.BS)
    assert r0['restored'] and r1['restored'] and r0['is_main_process'] and not r1['is_main_process']


def test_final_weights_identical_on_both_ranks(two):
    assert_same_weights(weights(two, 0, 'train'), weights(two, 1, 'train'))


def test_validation_equals_one_process_evaluation_of_the_same_weights(two):
    model = nn.Linear(4, 3)
    model.load_state_dict(weights(two, 0, 'train'))
    x, y, _ = worker.data().valid.dataset.tensors
    with torch.no_grad(): preds = model(x)
    for r in two['report']:
        torch.testing.assert_close(r['train']['losses'][-1]['valid'], F.cross_entropy(preds, y).item())
        torch.testing.assert_close(r['train']['metrics'][-1]['accuracy'], (preds.argmax(1) == y).float().mean().item())


def test_training_loss_is_the_mean_over_both_processes(two):
    r0, r1 = (r['train'] for r in two['report'])
    n = worker.N_TRAIN // (2 * worker.BS)  # training batches per process per epoch, all of BS samples
    for epoch in range(2):
        both = [[b['loss'] for b in r['losses_batch'] if b['training']][epoch * n:(epoch + 1) * n] for r in (r0, r1)]
        want = sum(both[0] + both[1]) / (2 * n)
        assert r0['losses'][epoch]['train'] == pytest.approx(want, rel=1e-5)
        assert r1['losses'][epoch]['train'] == r0['losses'][epoch]['train']


def test_only_rank_0_prints_the_table(two):
    out0, out1 = two['stdout']
    assert out0.splitlines()[0].split() == ['epoch', 'train', 'valid', 'accuracy'] and len(out0.splitlines()) >= 3
    assert out1 == ""


def test_cancel_fit_on_rank_1_alone_stops_both_after_the_same_step(two):
    r0, r1 = (r['cancel_fit'] for r in two['report'])
    assert r0['error'] is None and r1['error'] is None  # a cancel is not an error, on either process
    assert r0['steps'] == r1['steps'] == 4 and r0['end'] == r1['end'] == [0, True]
    assert_same_weights(weights(two, 0, 'cancel_fit'), weights(two, 1, 'cancel_fit'))


def test_cancel_epoch_on_rank_1_alone_skips_that_validation_on_both(two):
    for r in two['report']:
        c = r['cancel_epoch']
        assert c['error'] is None and [len(p['idx']) for p in c['seen'] if not p['training']] == [0, worker.N_VALID]
        # The epoch whose validation was cancelled is no finished epoch: no row for it (issue 13).
        assert len(c['losses']) == 1 and 'valid' in c['losses'][0]


def test_an_error_on_rank_1_ends_both_with_the_error_shown(two):
    r0, r1 = (r['error'] for r in two['report'])
    assert "ValueError: boom on rank 1" in r1['error']
    assert "ProcessStopError: process 1 failed" in r0['error'] and "boom on rank 1" in r0['error']


def test_a_collective_failed_elsewhere_is_named_in_the_cleanup_and_no_vote_follows(tmp_path, monkeypatch):
    """A collective outside the processes' own (a sharded forward, the loader's RNG sync) failed: the scope's end votes
    no more (the vote would wait for the lost process again) and gives a ProcessLostError naming it to raise."""
    import types
    import torch.distributed as dist
    if dist.is_initialized(): pytest.skip("a process group is already set up in this process")
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        monkeypatch.setattr(dist, "get_world_size", lambda group=None: 2)
        votes = []

        class Vote:
            preempted, messages = 0, []
            def __call__(self, *args): return votes.append(args) or OK

        acc = types.SimpleNamespace(num_processes=2, is_main_process=True, process_index=0)
        class Owner: preempted = None
        trainer = Owner()
        processes = AcceleratedProcesses(acc, Vote(), trainer)
        failed = RuntimeError("[../third_party/gloo/gloo/transport/tcp/pair.cc:561] Connection closed by peer")
        processes.end_scope("cleanup_batch", failed)
        lost = processes.take_stop()
        assert isinstance(lost, ProcessLostError) and str(lost).startswith("Lost process 1 of 2") and votes == []
        assert processes.fit_stop == ERROR and processes.phase_stop  # the ends of the phase and the fit vote no more
        processes.end_scope("cleanup_epoch", None), processes.end_scope("cleanup_fit", None)
        assert votes == [] and processes.take_stop() is None
        fresh = AcceleratedProcesses(acc, Vote(), trainer)
        fresh.end_scope("cleanup_batch", ValueError("boom"))
        assert fresh.take_stop() is None and len(votes) == 1  # a user's error votes
        assert votes[0][0] == ERROR and votes[0][1] == "ValueError: boom"
    finally: dist.destroy_process_group()
