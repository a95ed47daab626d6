"""get_model_conv and conv."""
import torch
from torch import nn

from AIsaac.all import conv, get_model_conv


def test_tutorial_net_maps_images_to_ten_logits():
    m = get_model_conv()
    assert m(torch.randn(5, 1, 28, 28)).shape == (5, 10)
    convs = [l for l in m.modules() if isinstance(l, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.stride) for c in convs] == \
        [(1, 8, (2, 2)), (8, 16, (2, 2)), (16, 32, (2, 2)), (32, 64, (2, 2)), (64, 10, (2, 2))]
    assert sum(isinstance(l, nn.ReLU) for l in m.modules()) == 4


def test_norm_removes_conv_bias_and_custom_widths_and_activation():
    m = get_model_conv(act=nn.GELU, nfs=[1, 4, 8, 8, 16], norm=nn.BatchNorm2d)
    assert m(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    c = m[0]
    assert c[0].bias is None and isinstance(c[1], nn.BatchNorm2d) and isinstance(c[2], nn.GELU)
    assert m[-2][0].bias is not None  # the last conv has no norm, so it keeps its bias


def test_conv_block():
    c = conv(3, 6, ks=5, stride=1, act=None)
    assert len(c) == 1 and c[0].padding == (2, 2) and c(torch.randn(1, 3, 9, 9)).shape == (1, 6, 9, 9)
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
