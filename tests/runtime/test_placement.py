"""to_device and to_cpu on nested structures; def_device; model_device."""
from collections import namedtuple

import torch
from torch import nn

from AIsaac.runtime.placement import def_device, model_device, to_cpu, to_device


def test_def_device_is_best_available():
    expected = "cuda" if torch.cuda.is_available() else ("mps" if torch.backends.mps.is_available() else "cpu")
    assert def_device.type == expected


def test_to_device_keeps_structure():
    P = namedtuple("P", "a b")
    batch = {"x": [torch.ones(2), (torch.zeros(1), 3)], "p": P(torch.ones(1), "s")}
    out = to_device(batch, "meta")
    assert out["x"][0].device.type == "meta" and isinstance(out["x"][1], tuple) and out["x"][1][1] == 3
    assert isinstance(out["p"], P) and out["p"].a.device.type == "meta" and out["p"].b == "s"


def test_to_cpu_detaches_and_widens_half_floats():
    t = torch.ones(2, requires_grad=True) * 2
    out = to_cpu([t, t.to(torch.bfloat16)])
    assert not out[0].requires_grad and out[1].dtype == torch.float32 and torch.equal(out[1], out[0])


def test_model_device_reads_the_first_parameter_or_buffer():
    assert model_device(nn.Linear(2, 2).to("meta")).type == "meta"
    assert model_device(nn.BatchNorm1d(2, affine=False).to("meta")).type == "meta"  # buffers only
    assert model_device(nn.ReLU()) == torch.device("cpu")
    assert model_device(nn.ReLU(), None) is None  # runs wherever its inputs are


def test_only_cpu_tensors_when_no_accelerator_is_available_and_no_xla(monkeypatch):
    import sys
    from AIsaac.runtime.placement import only_cpu_tensors
    assert only_cpu_tensors() is (not torch.accelerator.is_available() and "torch_xla" not in sys.modules)
    monkeypatch.setattr(torch.accelerator, "is_available", lambda: False)
    assert only_cpu_tensors()
    monkeypatch.setitem(sys.modules, "torch_xla", object())
    assert not only_cpu_tensors()
    monkeypatch.delitem(sys.modules, "torch_xla")
    monkeypatch.setattr(torch.accelerator, "is_available", lambda: True)
    assert not only_cpu_tensors()
