"""Trainer.save / load / export / validate: weights and optimizer state round trips, safe loading, clear errors, a
program that a plain script runs, and validation numbers equal to plain PyTorch's."""
import copy
import os
import pickle
import subprocess
import sys

import pytest
import torch
from torch import nn

from AIsaac.all import (Accuracy, BasicTrainCB, CheckpointError, CSVLoggerCB, DataLoaders, DeviceCB, MetricsCB,
                        ProgressCB, TensorLoader, Trainer)


def data(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(60, 5, generator=g)
    y = (x[:, :3].argmax(1))
    return x, y


def make(model_seed=0, opt_func=torch.optim.Adam, cbs=()):
    x, y = data()
    torch.manual_seed(model_seed)
    model = nn.Sequential(nn.Linear(5, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3))
    dls = DataLoaders(TensorLoader(x[:40], y[:40], batch_size=8), TensorLoader(x[40:], y[40:], batch_size=8))
    return Trainer(dls, nn.CrossEntropyLoss(), opt_func, model,
                   [DeviceCB("cpu"), BasicTrainCB(), MetricsCB(Accuracy=Accuracy()), ProgressCB(bars=False), *cbs])


def test_save_load_round_trip_and_the_next_fit_continues_adams_moments(tmp_path, capsys):
    a = make()
    a.fit(2, lr=1e-2)
    a.save(tmp_path / "model.pt")
    b = make(model_seed=1)
    b.load(tmp_path / "model.pt")
    for (k, v), w in zip(a.model.state_dict().items(), b.model.state_dict().values()): assert torch.equal(v, w), k
    # Plain PyTorch: Adam restarted from the saved moments, one epoch at lr 1e-3 over the same batches.
    model = copy.deepcopy(a.model)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    opt.load_state_dict(copy.deepcopy(a.opt.state_dict()))
    for g in opt.param_groups: g["lr"] = 1e-3
    model.train()
    for xb, yb in a.dls.train:
        nn.functional.cross_entropy(model(xb), yb).backward()
        opt.step()
        opt.zero_grad()
    b.fit(1, lr=1e-3, valid=False)
    for p, q in zip(model.parameters(), b.model.parameters()): torch.testing.assert_close(p, q)
    assert b.opt.param_groups[0]["lr"] == 1e-3 and b.opt_state is None
    assert b.opt.state_dict()["state"][0]["step"] == a.opt.state_dict()["state"][0]["step"] + 5 == 15


def test_load_without_opt_and_a_fresh_optimizer_differ(tmp_path):
    a = make()
    a.fit(1, lr=1e-2)
    a.save(tmp_path / "m.pt", with_opt=False)
    assert torch.load(tmp_path / "m.pt", weights_only=True)["opt"] is None
    b = make(model_seed=1).load(tmp_path / "m.pt")
    assert b.opt_state is None
    torch.testing.assert_close(b.get_preds()[0], a.get_preds()[0])


def test_mismatch_errors_name_the_keys_and_strict_false_loads_what_fits(tmp_path):
    a = make()
    a.save(tmp_path / "m.pt")
    other = make()
    other.model[3] = nn.Linear(16, 4)  # another head
    with pytest.raises(CheckpointError, match=r"shape mismatch: 3.weight \(saved \(3, 16\), model \(4, 16\)\)"):
        other.load(tmp_path / "m.pt")
    other.load(tmp_path / "m.pt", strict=False)
    assert torch.equal(other.model[0].weight, a.model[0].weight)
    with pytest.raises(FileNotFoundError, match="trainer.save"): other.load(tmp_path / "none.pt")
    torch.save(a.model.state_dict(), tmp_path / "bare.pt")
    with pytest.raises(CheckpointError, match="load_state_dict"): a.load(tmp_path / "bare.pt")


def test_load_never_runs_code_from_the_file(tmp_path):
    class Evil:
        def __reduce__(self): return (os.system, (f"touch {tmp_path / 'ran'}",))
    with open(tmp_path / "evil.pt", "wb") as f: pickle.dump({"model": Evil()}, f)
    torch.save({"format": "x", "model": {}, "opt": Evil()}, tmp_path / "evil2.pt")
    t = make()
    for name in ("evil.pt", "evil2.pt"):
        with pytest.raises(CheckpointError, match="cannot be loaded safely"): t.load(tmp_path / name)
    assert not (tmp_path / "ran").exists()


def test_load_reads_a_checkpoint_written_by_checkpoint_cb(tmp_path):
    from AIsaac.all import CheckpointCB
    a = make(cbs=[CheckpointCB(tmp_path)])
    a.fit(1, lr=1e-2)
    b = make(model_seed=3)
    files = sorted(tmp_path.glob("checkpoint-*.pt"))
    b.load(files[-1])
    torch.testing.assert_close(b.get_preds()[0], a.get_preds()[0])


PLAIN_SCRIPT = """
import json, sys
import torch
assert "AIsaac" not in sys.modules
info = {"aisaac.json": ""}
program = torch.export.load(sys.argv[1], extra_files=info)
x = torch.load(sys.argv[2], weights_only=True)
torch.save(program.module()(x), sys.argv[3])
print(json.loads(info["aisaac.json"])["preprocessing"])
print("AIsaac" in sys.modules)
"""


def test_exported_program_reproduces_the_model_in_a_plain_script(tmp_path):
    t = make()
    t.fit(1, lr=1e-2)
    x = data(1)[0][:7]  # another batch size than the example's: the batch dimension is free
    t.model.train()
    path = t.export(tmp_path / "model.pt2", t.dls.valid.tensors[0][:1], preprocessing="standardised 5 features")
    assert t.model.training  # its mode is put back
    torch.save(x, tmp_path / "x.pt")
    (tmp_path / "plain.py").write_text(PLAIN_SCRIPT)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # nothing of AIsaac on the path
    out = subprocess.run([sys.executable, str(tmp_path / "plain.py"), str(path), str(tmp_path / "x.pt"),
                          str(tmp_path / "y.pt")], capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["standardised 5 features", "False"]
    t.model.eval()
    with torch.no_grad(): expected = t.model(x)
    torch.testing.assert_close(torch.load(tmp_path / "y.pt", weights_only=True), expected)


def test_validate_matches_plain_pytorch_and_changes_nothing(tmp_path, capsys):
    t = make(cbs=[CSVLoggerCB(tmp_path / "h.csv")])
    t.fit(1, lr=1e-2)
    rows = (tmp_path / "h.csv").read_text()
    before = copy.deepcopy(t.model.state_dict()), copy.deepcopy(t.opt.state_dict()), len(t.MetricsCB.losses_epoch)
    capsys.readouterr()
    got = t.validate()
    x, y = t.dls.valid.tensors
    t.model.eval()
    with torch.no_grad(): out = t.model(x)
    assert set(got) == {"valid", "Accuracy"}
    assert got["valid"] == pytest.approx(nn.functional.cross_entropy(out, y).item(), rel=1e-6)
    assert got["Accuracy"] == pytest.approx((out.argmax(1) == y).float().mean().item())
    for k, v in before[0].items(): assert torch.equal(v, t.model.state_dict()[k])
    assert t.opt.state_dict()["state"][0]["step"] == before[1]["state"][0]["step"]
    assert len(t.MetricsCB.losses_epoch) == before[2] and (tmp_path / "h.csv").read_text() == rows
    assert capsys.readouterr().out == ""  # no table: the display is left out
    # Any loader: the training data's numbers.
    xt, yt = t.dls.train.tensors
    with torch.no_grad(): expected = nn.functional.cross_entropy(t.model(xt), yt).item()
    assert t.validate(t.dls.test_dl((xt, yt)))["valid"] == pytest.approx(expected, rel=1e-6)


def test_validate_needs_metrics():
    t = Trainer(make().dls, nn.CrossEntropyLoss(), torch.optim.SGD, nn.Linear(5, 3), [BasicTrainCB()])
    with pytest.raises(ValueError, match="MetricsCB"): t.validate()


# ---- issue 21: every optimizer is saved and loaded ----
def two_optimizers(params, lr):
    """Adam for the first layer, SGD with momentum for the rest: `trainer.opts` == {'body', 'head'}."""
    params = list(params)
    return {"body": torch.optim.Adam(params[:2], lr=lr), "head": torch.optim.SGD(params[2:], lr=lr, momentum=0.9)}


def test_save_and_load_carry_every_optimizer(tmp_path):
    """Issue 21: with two optimizers trainer.save wrote 'opt': None and load restored none."""
    a = make(opt_func=two_optimizers)
    a.fit(2, lr=1e-2)
    a.save(tmp_path / "two.pt")
    saved = torch.load(tmp_path / "two.pt", weights_only=True)
    assert set(saved["opts"]) == {"body", "head"} and saved["opt"] is None
    b = make(model_seed=1, opt_func=two_optimizers)
    b.fit(1, lr=1e-3)  # b has its own optimizers: load fills them
    b.load(tmp_path / "two.pt")
    for name in ("body", "head"):
        ours, theirs = b.opts[name].state_dict(), a.opts[name].state_dict()
        assert ours["state"].keys() == theirs["state"].keys() and ours["state"]
        for i, s in theirs["state"].items():
            for k, v in s.items(): assert torch.equal(ours["state"][i][k], v), (name, i, k)
        assert b.opts[name].param_groups[0]["lr"] == 1e-3  # the fit's own lr is kept
    assert set(b.opt_state) == {"body", "head"}
    b.save(tmp_path / "again.pt")  # and it saves them again
    assert set(torch.load(tmp_path / "again.pt", weights_only=True)["opts"]) == {"body", "head"}
    one = make()
    with pytest.raises(CheckpointError, match=r"optimizers \['body', 'head'\], but the trainer has \['opt'\]"):
        one.fit(1, lr=1e-3)
        one.load(tmp_path / "two.pt")


def test_a_single_optimizer_file_keeps_its_form(tmp_path):
    a = make()
    a.fit(1, lr=1e-2)
    a.save(tmp_path / "one.pt")
    saved = torch.load(tmp_path / "one.pt", weights_only=True)
    assert set(saved["opts"]) == {"opt"} and saved["opt"]["state"]  # read by AIsaac versions that know only "opt"
    b = make()
    b.load(tmp_path / "one.pt")
    assert "param_groups" in b.opt_state  # what the next fit's new optimizer starts from


def test_the_next_fit_starts_every_optimizer_from_the_loaded_states(tmp_path):
    a = make(opt_func=two_optimizers)
    a.fit(2, lr=1e-2)
    a.save(tmp_path / "two.pt")
    b = make(model_seed=1, opt_func=two_optimizers)
    b.load(tmp_path / "two.pt")  # before any fit: no optimizers yet, the states wait for the next fit
    b.fit(1, lr=1e-3, valid=False)
    assert b.opts["body"].state_dict()["state"][0]["step"] == a.opts["body"].state_dict()["state"][0]["step"] + 5
    assert b.opt_state is None
def test_save_as_safetensors_round_trips_the_weights(tmp_path):
    st = pytest.importorskip("safetensors.torch")
    a = make()
    a.fit(1, lr=1e-2)
    path = a.save(tmp_path / "model.safetensors", format="safetensors")
    b = make(model_seed=1)
    missing, unexpected = st.load_model(b.model, path)
    assert not missing and not unexpected
    for (k, v), w in zip(a.model.state_dict().items(), b.model.state_dict().values()): assert torch.equal(v, w), k
    assert set(st.load_file(path)) == set(a.model.state_dict())  # BatchNorm's buffers too
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]  # no temporary file left


def test_safetensors_keeps_tied_weights_once():
    st = pytest.importorskip("safetensors.torch")
    from AIsaac.tools.persist import safetensors_weights

    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb, self.out = nn.Embedding(7, 4), nn.Linear(4, 7, bias=False)
            self.out.weight = self.emb.weight

    model = Tied()
    tensors = safetensors_weights(model)
    assert list(tensors) == ["emb.weight"]
    other = Tied()
    other.load_state_dict(st.load(st.save(tensors)), strict=False)
    assert torch.equal(other.out.weight, model.emb.weight) and other.out.weight is other.emb.weight


def test_safetensors_missing_names_the_package_and_leaves_no_file(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "safetensors.torch", None)  # what the import meets when it is not installed
    with pytest.raises(ImportError, match="pip install safetensors"):
        make().save(tmp_path / "m.safetensors", format="safetensors")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="'torch'.*'safetensors'"): make().save(tmp_path / "m", format="onnx")


def test_safetensors_refuses_non_tensor_extra_state_naming_the_module(tmp_path):
    """Issue 33: a module whose get_extra_state returns a dict failed `save(format='safetensors')` with a bare
    `AttributeError: 'dict' object has no attribute 'detach'`."""
    class WithExtra(nn.Module):
        def __init__(self): super().__init__(); self.lin = nn.Linear(5, 3)
        def forward(self, x): return self.lin(x)
        def get_extra_state(self): return {"vocab": ["a", "b"]}
        def set_extra_state(self, state): pass
    x, y = data()
    model = nn.Sequential(WithExtra())
    trainer = Trainer(DataLoaders(TensorLoader(x, y, batch_size=8), None), nn.CrossEntropyLoss(), torch.optim.SGD,
                      model, [BasicTrainCB()])
    with pytest.raises(TypeError, match=r"'0\._extra_state' is a dict.*format='torch'"):
        trainer.save(tmp_path / "m.safetensors", format="safetensors")
    assert not (tmp_path / "m.safetensors").exists()
    trainer.save(tmp_path / "m.pt")  # the torch format keeps it


def test_load_of_a_file_from_a_newer_aisaac_says_upgrade(tmp_path):
    """Issue 33 (a checkpoint of a newer format): trainer.load read a newer file's entries as if they were this one's."""
    from AIsaac.runtime.checkpoint_file import SAVE_FORMAT
    a = make()
    path = a.save(tmp_path / "model.pt")
    state = torch.load(path, weights_only=True)
    state["format"] = SAVE_FORMAT.rsplit(" ", 1)[0] + " 99"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="written by a newer version of AIsaac.*pip install -U aisaac"): a.load(path)
