import pytest
import torch
from torch import nn
from torch.testing import assert_close

from AIsaac.all import GradClipCB


def hand_loop(model, dls, clip, lr=0.5):
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    for xb, yb in dls.train:
        nn.functional.cross_entropy(model(xb), yb).backward()
        clip(model.parameters())
        opt.step()
        opt.zero_grad()


@pytest.mark.parametrize("kwargs, clip", [
    (dict(max_norm=0.1), lambda ps: nn.utils.clip_grad_norm_(ps, 0.1)),
    (dict(max_norm=0.1, norm_type=1.0), lambda ps: nn.utils.clip_grad_norm_(ps, 0.1, 1.0)),
    (dict(max_value=0.01), lambda ps: nn.utils.clip_grad_value_(ps, 0.01)),
])
def test_matches_clipping_by_hand(make_trainer, make_model, make_dls, kwargs, clip):
    model, ref, unclipped = make_model(), make_model(), make_model()
    t = make_trainer([GradClipCB(**kwargs)], model=model)
    t.fit(1, lr=0.5)
    hand_loop(ref, make_dls(), clip)
    hand_loop(unclipped, make_dls(), lambda ps: None)
    for p, q in zip(model.parameters(), ref.parameters()): assert_close(p, q)
    assert any(not torch.allclose(p, q) for p, q in zip(model.parameters(), unclipped.parameters()))
    if 'max_norm' in kwargs: assert t.GradClipCB.last_norm > kwargs['max_norm']


def test_hook_removed_after_fit(make_trainer):
    t = make_trainer([GradClipCB(1.0)])
    t.fit(1)
    assert not t.opt._optimizer_step_pre_hooks


def test_needs_exactly_one_limit():
    with pytest.raises(ValueError, match="exactly one"): GradClipCB()
    with pytest.raises(ValueError, match="exactly one"): GradClipCB(1.0, max_value=1.0)


@pytest.mark.parametrize("kwargs", [dict(max_norm=-1), dict(max_norm=0), dict(max_value=-0.5), dict(max_norm=float("nan")),
                                    dict(max_norm="1"), dict(max_norm=1.0, norm_type=0)])
def test_bad_limits_are_refused(kwargs):
    """Issue 33: GradClipCB(-1) was accepted."""
    with pytest.raises(ValueError, match="GradClipCB"): GradClipCB(**kwargs)
