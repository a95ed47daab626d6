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


def test_errors():
    model = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
    with pytest.raises(TypeError, match="no weight"): lsuv_init(model, model[1], torch.randn(4, 2))
    with pytest.raises(ValueError, match="was not called"): lsuv_init(model, nn.Linear(2, 2), torch.randn(4, 2))
    with pytest.raises(ValueError, match="single module"):
        lsuv_init(model, [model[0], model[0]], torch.randn(4, 2), measure=model[1])
