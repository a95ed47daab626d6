"""`trainer.log(name, value)`: a VAE logs its KL term; the values in the table, epoch_log, the CSV; two processes."""
import contextlib
import csv
import importlib.util
import io
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from AIsaac.callback import is_record_key
from AIsaac.all import BasicTrainCB, Callback, CSVLoggerCB, DataLoaders, MetricsCB, ProgressCB, TensorLoader, Trainer

ROOT = Path(__file__).resolve().parents[1]
WORKER = ROOT / "tests" / "helpers" / "log_worker.py"


class VAE(nn.Module):
    def __init__(self, n_in=12, n_lat=3):
        super().__init__()
        self.enc, self.dec = nn.Linear(n_in, 2 * n_lat), nn.Linear(n_lat, n_in)

    def forward(self, x):
        mu, logvar = self.enc(x).chunk(2, dim=1)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp() if self.training else mu
        return self.dec(z), mu, logvar


def kl_term(mu, logvar): return (-0.5 * (1 + logvar - mu ** 2 - logvar.exp()).sum(1)).mean()


class VAELossCB(Callback):
    '''The VAE's loss: reconstruction plus KL, with the KL term logged'''
    claims = ('get_loss',)

    def __init__(self): self.seen = []

    def get_loss(self, trainer):
        recon, mu, logvar = trainer.preds
        kl = kl_term(mu, logvar)
        trainer.log("kl", kl)
        trainer.loss = F.mse_loss(recon, trainer.xb[0]) + 0.1 * kl
        self.seen.append((trainer.training, kl.item(), len(mu)))  # (the test's record: a read per batch)


def test_vae_logs_its_kl_term_into_the_table_epoch_log_and_csv(tmp_path):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(90, 12, generator=g)
    dls = DataLoaders(TensorLoader(x[:60], batch_size=16), TensorLoader(x[60:], batch_size=16))  # batches (x,)
    torch.manual_seed(0)
    model, loss_cb = VAE(), VAELossCB()
    trainer = Trainer(dls, None, torch.optim.Adam, model,
                      [BasicTrainCB(), loss_cb, MetricsCB(), ProgressCB(bars=False), CSVLoggerCB(tmp_path / "h.csv")])
    out = io.StringIO()
    with contextlib.redirect_stdout(out): trainer.fit(2, lr=1e-2)
    assert out.getvalue().splitlines()[0].split() == ["epoch", "train", "valid", "train_kl", "kl"]

    n = len(loss_cb.seen) // 2
    for epoch, seen in enumerate((loss_cb.seen[:n], loss_cb.seen[n:])):
        for training, name in ((True, "train_kl"), (False, "kl")):
            rows = [(v, b) for t, v, b in seen if t == training]  # batches of 16, 16, 16, 12 and 16, 14
            want = sum(v * b for v, b in rows) / sum(b for _, b in rows)
            assert trainer.MetricsCB.metrics_epoch[epoch][name] == pytest.approx(want, rel=1e-5)
    model.eval()
    with torch.no_grad(): _, mu, logvar = model(x[60:])
    assert trainer.epoch_log["kl"] == pytest.approx(kl_term(mu, logvar).item(), rel=1e-5)  # per-row mean = by hand
    with open(tmp_path / "h.csv") as f: rows = list(csv.DictReader(f))
    assert [k for k in rows[0] if not is_record_key(k)] == ["epoch", "train", "valid", "train_kl", "kl"]
    assert float(rows[1]["kl"]) == pytest.approx(trainer.epoch_log["kl"], rel=1e-5)


def test_log_values_are_reset_each_phase_and_a_fit_without_them_has_no_columns():
    spy = []

    class Once(Callback):
        def after_batch(self, trainer):
            if trainer.epoch == 0 and trainer.training: trainer.log("first", 2.0)
            spy.append(dict(trainer.logged))

    x = torch.randn(8, 2)
    t = Trainer(DataLoaders(TensorLoader(x, x[:, 0].long().abs() % 2, batch_size=4),
                            TensorLoader(x, x[:, 0].long().abs() % 2, batch_size=4)),
                F.cross_entropy, torch.optim.SGD, nn.Linear(2, 2), [BasicTrainCB(), Once(), MetricsCB()])
    t.fit(2)
    assert t.MetricsCB.metrics_epoch == [{"train_first": 2.0}, {}]
    assert spy[2] == {}  # the validation phase starts with nothing logged


# ---- two processes ----
_spec = importlib.util.spec_from_file_location("log_worker", WORKER)
worker = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(worker)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_two(tmp_path, extra_env=None, timeout=120):
    env = {**os.environ, "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": str(free_port()), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    procs = [subprocess.Popen([sys.executable, str(WORKER), str(tmp_path)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, start_new_session=True,
                              env={**env, **(extra_env or {}), "RANK": str(r), "LOCAL_RANK": str(r)}) for r in (0, 1)]
    try: outputs = [p.communicate(timeout=timeout) for p in procs]  # a hang in a collective fails here, not forever
    finally:
        for p in procs:
            if p.poll() is None: os.killpg(p.pid, signal.SIGKILL)
    return procs, outputs


@pytest.mark.parametrize("phase", ["train", "valid"])
def test_names_that_differ_between_processes_are_an_error_naming_them_not_a_hang(tmp_path, phase):
    pytest.importorskip("accelerate")
    procs, outputs = launch_two(tmp_path, {"LOG_MISMATCH": phase}, timeout=90)
    assert all(p.returncode != 0 for p in procs)
    msg = (tmp_path / "rank0.err").read_text()
    assert "different names on different processes" in msg and "process 1: only_here, x2, xmean" in msg, msg
    assert "process 0: x2, xmean" in msg


def test_two_gloo_processes_log_the_one_process_values(tmp_path):
    pytest.importorskip("accelerate")
    procs, outputs = launch_two(tmp_path)
    for p, (_, err) in zip(procs, outputs): assert p.returncode == 0, err[-3000:]
    two = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    one = worker.fit_logging()
    x = worker.data().train.dataset.tensors[0]
    xv = worker.data().valid.dataset.tensors[0]
    for epoch in range(2):
        assert one[epoch]["train_xmean"] == pytest.approx(x.mean().item(), rel=1e-5)
        assert one[epoch]["xmean"] == pytest.approx(xv.mean().item(), rel=1e-5)
        assert one[epoch]["train_x2"] == pytest.approx((x ** 2).mean().item(), rel=1e-5)
        for r in two:
            assert r[epoch].keys() == one[epoch].keys()
            for k, v in one[epoch].items(): assert r[epoch][k] == pytest.approx(v, rel=1e-5), k


@pytest.mark.parametrize("name, value, match", [("valid", 1.0, "replace 'valid'"), ("train", 1.0, "replace 'train'"),
                                                ("lr", 1.0, "record of the run"),
                                                ("kl", torch.ones(3), "takes one number")])
def test_log_refuses_a_loss_name_a_record_name_and_a_vector_at_the_first_call(name, value, match):
    class Logs(Callback):
        def after_batch(self, trainer):
            if not trainer.training: trainer.log(name, value)

    x = torch.randn(16, 3)
    dls = DataLoaders(TensorLoader(x, x[:, 0].gt(0).long(), batch_size=8), TensorLoader(x, x[:, 0].gt(0).long(), batch_size=8))
    t = Trainer(dls, F.cross_entropy, torch.optim.SGD, nn.Linear(3, 2), [BasicTrainCB(), MetricsCB(), Logs()])
    with pytest.raises(ValueError, match=match): t.fit(1)
    assert len(t.MetricsCB.losses_epoch) == 0  # refused during the first validation batch: no row built on it


@pytest.mark.parametrize("train_name, valid_name, match", [
    ("x", "train_x", r"'train_' is the prefix.*log 'x'"),  # would both land on 'train_x'
    ("train_x", None, r"'train_' is the prefix"),
    ("", None, "a name of letters"), (" ", None, "a name of letters"), (None, "x ", "spaces"), (None, 3, "a string")])
def test_log_refuses_names_that_collide_or_say_nothing(train_name, valid_name, match):
    """Issue 33: log('x') in training and log('train_x') in validation landed on one key ('train_x') and one value
    was lost; '' and ' ' were accepted as names."""
    class Logs(Callback):
        def after_batch(self, trainer):
            name = train_name if trainer.training else valid_name
            if name is not None: trainer.log(name, 1.0)

    x = torch.randn(16, 3)
    dls = DataLoaders(TensorLoader(x, x[:, 0].gt(0).long(), batch_size=8), TensorLoader(x, x[:, 0].gt(0).long(), batch_size=8))
    t = Trainer(dls, F.cross_entropy, torch.optim.SGD, nn.Linear(3, 2), [BasicTrainCB(), MetricsCB(), Logs()])
    with pytest.raises((ValueError, TypeError), match=match): t.fit(1)
