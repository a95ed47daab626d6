import torch
from torch import nn

from AIsaac.all import conv, get_model_conv


def test_conv_with_batchnorm_drops_the_bias():
    layer = conv(3, 8, norm=nn.BatchNorm2d)
    assert [type(m) for m in layer] == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU]
    assert layer[0].bias is None and layer[1].num_features == 8
    assert conv(3, 8)[0].bias is not None
    assert conv(3, 8, norm=nn.BatchNorm2d, bias=True)[0].bias is not None


def test_conv_with_batchnorm_matches_plain_pytorch():
    torch.manual_seed(0)
    layer = conv(2, 4, ks=3, stride=2, norm=nn.BatchNorm2d)
    x = torch.randn(5, 2, 9, 9)
    by_hand = nn.functional.batch_norm(nn.functional.conv2d(x, layer[0].weight, stride=2, padding=1), None, None,
                                       layer[1].weight, layer[1].bias, training=True)
    torch.testing.assert_close(layer(x), by_hand.relu())


def test_get_model_conv_norm():
    model = get_model_conv(norm=nn.BatchNorm2d)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert [bn.num_features for bn in bns] == [8, 16, 32, 64]
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert all(c.bias is None for c in convs[:-1]) and convs[-1].bias is not None  # the logits layer keeps its bias
    assert model(torch.randn(3, 1, 28, 28)).shape == (3, 10)
