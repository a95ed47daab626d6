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
