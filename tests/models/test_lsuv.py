import pytest
import torch
from torch import nn

from AIsaac.all import get_model_conv, lsuv_init


def test_one_linear_pass_matches_hand_computation():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 4))
    xb = torch.randn(64, 5) * 3 + 2
    w0, b0 = model[2].weight.clone(), model[2].bias.clone()
    # By hand: the second layer's output stats, then weight / std and (bias - mean) / std.
    out = model[2](model[1](model[0](xb)))
    mean, std = out.mean(), out.std()
    lsuv_init(model, model[2], xb, max_iter=1)
    torch.testing.assert_close(model[2].weight, w0 / std)
    torch.testing.assert_close(model[2].bias, (b0 - mean) / std)


def test_conv_net_layers_reach_unit_variance():
    torch.manual_seed(0)
    model = get_model_conv(nfs=[1, 4, 8])
    xb = torch.randn(32, 1, 28, 28) * 2 + 0.5
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    stats = lsuv_init(model, convs, xb)
    assert len(stats) == len(convs)
    acts, outs = xb, {}
    hooks = [c.register_forward_hook(lambda m, i, o: outs.__setitem__(m, o)) for c in convs]
    model(acts)
    for h in hooks: h.remove()
    for c in convs:  # every conv of this net has a bias (no norm): mean 0 and std 1
        torch.testing.assert_close(outs[c].mean(), torch.tensor(0.), atol=1e-3, rtol=0)
        torch.testing.assert_close(outs[c].std(), torch.tensor(1.), atol=1e-3, rtol=0)


def test_measure_after_activation_and_no_bias():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16, bias=False), nn.ReLU())
    xb = torch.randn(128, 6)
    mean, std = lsuv_init(model, model[0], xb, measure=model[1], max_iter=20)[0]
    assert abs(std - 1) < 1e-3
    torch.testing.assert_close(model(xb).std(), torch.tensor(std))


def test_every_module_of_a_model_as_the_original_notebooks_do():
    # `for m in model.modules(): lsuv_init(model, m, xb)`: containers, activations and Flatten have no weight and
    # are left alone; each conv ends with mean 0 and std 1 (measured on its own output) as in plain PyTorch.
    torch.manual_seed(0)
    model = get_model_conv(nfs=[1, 4, 8])
    xb = torch.randn(32, 1, 28, 28) * 2 + 0.5
    before = {n: p.clone() for n, p in model.named_parameters()}
    done = [lsuv_init(model, m, xb) for m in model.modules()]
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert sum(len(d) for d in done) == len(convs)
    assert [d for m, d in zip(model.modules(), done) if not isinstance(m, nn.Conv2d)] == [[]] * (len(done) - len(convs))
    assert all(not torch.equal(before[n], p) for n, p in model.named_parameters())  # every weight and bias moved
    for c in convs:
        with torch.no_grad():
            outs = []
            h = c.register_forward_hook(lambda m, i, o: outs.append(o))
            model(xb)
            h.remove()
        torch.testing.assert_close(outs[0].mean(), torch.tensor(0.), atol=1e-3, rtol=0)
        torch.testing.assert_close(outs[0].std(), torch.tensor(1.), atol=1e-3, rtol=0)
    assert all(not m._forward_hooks for m in model.modules())


def test_errors():
    model = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
    w = model[0].weight.clone()
    assert lsuv_init(model, model[1], torch.randn(4, 2)) == []  # no weight: skipped, as in the original
    assert torch.equal(model[0].weight, w)
    with pytest.raises(TypeError, match="torch.nn.Module or an iterable"): lsuv_init(model, "0", torch.randn(4, 2))
    with pytest.raises(TypeError, match="torch.nn.Module or an iterable"): lsuv_init(model, 3, torch.randn(4, 2))
    with pytest.raises(TypeError, match="every item"): lsuv_init(model, [model[0], "relu"], torch.randn(4, 2))
    with pytest.raises(ValueError, match="was not called"): lsuv_init(model, nn.Linear(2, 2), torch.randn(4, 2))
    with pytest.raises(ValueError, match="single module"):
        lsuv_init(model, [model[0], model[0]], torch.randn(4, 2), measure=model[1])
