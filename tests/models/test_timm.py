import sys

import pytest
import torch

from AIsaac.all import get_model_timm


def test_missing_timm_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)  # makes `import timm` raise ImportError
    with pytest.raises(ImportError, match="pip install timm"): get_model_timm("resnet18")


def test_small_model_offline():
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    model = get_model_timm("test_resnet", in_chans=1, num_classes=10)
    torch.manual_seed(0)
    expected = timm.create_model("test_resnet", pretrained=False, in_chans=1, num_classes=10)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), expected.state_dict().values()))
    model.eval(), expected.eval()
    x = torch.randn(2, 1, 28, 28)
    torch.testing.assert_close(model(x), expected(x))
    assert model(x).shape == (2, 10)


def test_unknown_name():
    pytest.importorskip("timm")
    with pytest.raises(ValueError, match="no model named 'resnet_nope'.*similar names: .*resnet"):
        get_model_timm("resnet_nope")
