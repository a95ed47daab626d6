"""`materialize`: a model built on the meta device, allocated and initialized module by module (the sharded case runs
in tests/callbacks/test_accelerate_fsdp_sharded.py)."""
import torch
from torch import nn

from AIsaac.all import materialize, set_seed


def get_model(): return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))


def test_reset_parameters_draws_as_the_model_built_whole():
    set_seed(0)
    whole = get_model()
    with torch.device("meta"): meta = get_model()
    assert next(meta.parameters()).is_meta
    set_seed(0)
    assert materialize(meta, device="cpu") is meta
    assert all(torch.equal(a, b) for a, b in zip(whole.state_dict().values(), meta.state_dict().values()))


def test_init_runs_for_every_module_without_grad():
    with torch.device("meta"): meta = get_model()
    seen = []

    def init(m):
        seen.append(type(m).__name__)
        for p in m.parameters(recurse=False): p.fill_(0.5)  # in place on a leaf: needs no_grad
        for b in m.buffers(recurse=False): b.zero_()
    materialize(meta, init, device="cpu")
    assert seen == ["Sequential", "Linear", "BatchNorm1d", "ReLU", "Linear"]
    assert all(bool((p == 0.5).all()) and p.requires_grad for p in meta.parameters())
