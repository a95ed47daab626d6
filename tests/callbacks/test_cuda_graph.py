"""CudaGraphCB: declines cleanly where capture is unsafe (tested here on the CPU); on a GPU its fit equals eager."""
import functools
import warnings

import pytest
import torch
from torch import nn

from AIsaac.all import (ActivationStatsCB, BasicTrainCB, CudaGraphCB, DataLoaders, DeviceCB, MetricsCB, Trainer, get_model_conv)

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
CapturableAdam = functools.partial(torch.optim.Adam, capturable=True)


def mlp(): return nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 32), nn.ReLU(), nn.Linear(32, 10))


def fit(step_cb, model_fn=mlp, device="cpu", n=200, bs=32, drop_last=True, opt_func=CapturableAdam, extra=(), epochs=2):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g)
    dls = DataLoaders.from_tensors((x, y), (x[:64], y[:64]), bs, drop_last=drop_last, device=device)
    dls.train.generator = torch.Generator().manual_seed(1)
    torch.manual_seed(0)
    t = Trainer(dls, nn.CrossEntropyLoss(), opt_func, model_fn(), [step_cb, DeviceCB(device), MetricsCB(), *extra])
    t.fit(epochs, lr=1e-3)
    return t


def assert_same_fit(a, b, **tol):
    for p, q in zip(a.model.parameters(), b.model.parameters()): torch.testing.assert_close(p, q, **tol)
    torch.testing.assert_close([r['loss'] for r in a.MetricsCB.losses_batch],
                               [r['loss'] for r in b.MetricsCB.losses_batch], **tol)


# ---- on the CPU: the decline path ----
def test_declines_on_cpu_with_every_reason_and_trains_eagerly():
    class Hook:
        def before_backward(self, trainer): pass
    with pytest.warns(UserWarning) as w:
        graphed = fit(CudaGraphCB(), opt_func=torch.optim.Adam, extra=[Hook(), ActivationStatsCB()])
    msg = " ".join(str(x.message) for x in w if "CudaGraphCB" in str(x.message))
    for part in ("CUDA device", "capturable=True", "functools.partial(torch.optim.Adam, capturable=True)",
                 "Hook", "before_backward", "hooks", "eagerly"):
        assert part in msg, part
    assert graphed.CudaGraphCB.graph is None and graphed.CudaGraphCB.declined
    eager = fit(BasicTrainCB(), opt_func=torch.optim.Adam, extra=[ActivationStatsCB()])
    for p, q in zip(graphed.model.parameters(), eager.model.parameters()): assert torch.equal(p, q)
    assert graphed.MetricsCB.losses_batch == eager.MetricsCB.losses_batch


def test_declines_once_per_fit_and_claims_the_step():
    with pytest.warns(UserWarning, match="CudaGraphCB"): t = fit(CudaGraphCB(), opt_func=torch.optim.SGD, epochs=1)
    assert set(CudaGraphCB.claims) == {'predict', 'get_loss', 'backward', 'step', 'zero_grad'}
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        t.fit(2)
    assert sum("CudaGraphCB" in str(x.message) for x in w) == 1


# ---- on a GPU: the graph's fit equals the eager fit ----
@cuda
def test_graph_fit_equals_eager_fit():
    graphed = fit(CudaGraphCB(), device="cuda")
    assert graphed.CudaGraphCB.declined is None
    eager = fit(BasicTrainCB(), device="cuda")
    assert_same_fit(graphed, eager, rtol=1e-4, atol=1e-5)


@cuda
def test_graph_fit_of_the_conv_net_equals_eager_fit():
    graphed = fit(CudaGraphCB(), model_fn=get_model_conv, device="cuda")
    eager = fit(BasicTrainCB(), model_fn=get_model_conv, device="cuda")
    assert graphed.CudaGraphCB.declined is None
    assert_same_fit(graphed, eager, rtol=1e-3, atol=1e-4)


@cuda
def test_partial_last_batch_runs_eagerly_with_a_warning():
    with pytest.warns(UserWarning, match="drop_last=True"):
        graphed = fit(CudaGraphCB(), device="cuda", n=200, bs=48, drop_last=False)  # 4 full batches and one of 8
    eager = fit(BasicTrainCB(), device="cuda", n=200, bs=48, drop_last=False)
    assert graphed.CudaGraphCB.declined is None
    assert_same_fit(graphed, eager, rtol=1e-4, atol=1e-5)


@cuda
def test_a_learning_rate_set_by_a_scheduler_reaches_the_graph():
    class Halve:
        def before_batch(self, trainer):
            if trainer.training:
                for g in trainer.opt.param_groups: g['lr'] = float(g['lr']) * 0.5
    graphed = fit(CudaGraphCB(), device="cuda", extra=[Halve()])
    eager = fit(BasicTrainCB(), device="cuda", extra=[Halve()])
    assert_same_fit(graphed, eager, rtol=1e-4, atol=1e-5)


@cuda
def test_captures_inside_autocast_entered_in_before_batch():
    class BF16:
        def before_batch(self, trainer):
            self.ctx = torch.autocast("cuda", dtype=torch.bfloat16)
            self.ctx.__enter__()
        def cleanup_batch(self, trainer): self.ctx.__exit__(None, None, None)
    graphed = fit(CudaGraphCB(), device="cuda", extra=[BF16()])
    eager = fit(BasicTrainCB(), device="cuda", extra=[BF16()])
    assert graphed.CudaGraphCB.declined is None
    assert_same_fit(graphed, eager, rtol=2e-2, atol=2e-2)
