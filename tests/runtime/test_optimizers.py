"""Building the optimizers (AIsaac/runtime/optimizers.py): parameter groups, discriminative learning rates, freezing
and optimizers kept between fits, against plain PyTorch; first through a trainer, as users call them, then the
functions themselves."""
import functools

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from AIsaac.all import BasicTrainCB, DataLoaders, Trainer, body_head_splitter
from AIsaac.runtime.optimizers import build_optimizers, check_lr, fit_optimizers, freeze_to, spread_lrs


def make_dls():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(96, 4, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long()
    return DataLoaders(DataLoader(TensorDataset(x[:64], y[:64]), batch_size=8),
                       DataLoader(TensorDataset(x[64:], y[64:]), batch_size=16))


def make_model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))


def make(opt_func=torch.optim.Adam, splitter=body_head_splitter, model=None):
    return Trainer(make_dls(), nn.CrossEntropyLoss(), opt_func, model or make_model(), [BasicTrainCB()],
                   splitter=splitter)


def hand_fit(model, opt, n_epochs):
    """The same training in plain PyTorch (train phases only: validation changes nothing but BatchNorm's mode)."""
    for _ in range(n_epochs):
        model.train()
        for xb, yb in make_dls().train:
            nn.functional.cross_entropy(model(xb), yb).backward()
            opt.step()
            opt.zero_grad()


def clone(model): return {k: v.clone() for k, v in model.state_dict().items()}


def test_slice_spreads_lrs_geometrically_over_the_groups():
    t = make(splitter=lambda m: [m[0].parameters(), m[1].parameters(), m[3].parameters()])
    t.fit(1, lr=slice(1e-4, 1e-2))
    assert [g['lr'] for g in t.opt.param_groups] == pytest.approx([1e-4, 1e-3, 1e-2])
    t.fit(1, lr=slice(1e-2))
    assert [g['lr'] for g in t.opt.param_groups] == pytest.approx([1e-3, 1e-3, 1e-2])
    t.fit(1, lr=[1e-3, 2e-3, 3e-3])
    assert [g['lr'] for g in t.opt.param_groups] == pytest.approx([1e-3, 2e-3, 3e-3])
    with pytest.raises(ValueError, match="2 learning rates but the splitter makes 3"): t.fit(1, lr=[1e-3, 1e-2])
    with pytest.raises(ValueError, match="finite"): t.fit(1, lr=slice(0, 1e-2))


def test_groups_train_like_plain_pytorch_with_the_same_groups():
    t = make()
    t.fit(2, lr=slice(1e-3, 1e-2))
    ref = make_model()
    body = [p for i in (0, 1) for p in ref[i].parameters()]
    opt = torch.optim.Adam([{'params': body, 'lr': 1e-3}, {'params': ref[3].parameters(), 'lr': 1e-2}])
    hand_fit(ref, opt, 2)
    for a, b in zip(t.model.parameters(), ref.parameters()): assert torch.allclose(a, b, atol=1e-6)


def test_timm_lr_scale_is_honoured():
    from timm.optim import param_groups_layer_decay
    from AIsaac.all import get_model_timm
    model = get_model_timm('resnet18', in_chans=1, num_classes=2)
    t = Trainer(make_dls(), nn.CrossEntropyLoss(), torch.optim.AdamW, model, [],
                splitter=functools.partial(param_groups_layer_decay, weight_decay=0.05, layer_decay=0.5))
    groups = build_optimizers(t.opt_func, t.model, t.splitter, 1e-3).single.param_groups  # what fit builds first
    assert len({g['lr_scale'] for g in groups}) > 3
    for g in groups: assert g['lr'] == pytest.approx(1e-3 * g['lr_scale'])


def test_freeze_leaves_frozen_tensors_bit_identical_and_trains_norm_layers():
    t = make(opt_func=functools.partial(torch.optim.AdamW, weight_decay=0.1))
    before = clone(t.model)
    t.freeze()
    t.fit(2, lr=1e-2)
    m = t.model
    assert torch.equal(m[0].weight, before['0.weight']) and torch.equal(m[0].bias, before['0.bias'])
    assert m[0].weight.grad is None and m[0].bias.grad is None
    assert not any(p in t.opt.state for p in m[0].parameters())  # no optimizer state either
    assert not torch.equal(m[1].weight, before['1.weight'])  # BatchNorm trains by default
    assert not torch.equal(m[3].weight, before['3.weight'])
    # Plain PyTorch: the first layer's requires_grad off, the rest trained with the same optimizer.
    ref = make_model()
    for p in ref[0].parameters(): p.requires_grad_(False)
    hand_fit(ref, torch.optim.AdamW(ref.parameters(), lr=1e-2, weight_decay=0.1), 2)
    for a, b in zip(m.parameters(), ref.parameters()): assert torch.allclose(a, b, atol=1e-6)
    t.unfreeze()
    t.fit(1, lr=slice(1e-3, 1e-2))
    assert not torch.equal(m[0].weight, before['0.weight'])
    assert [g['lr'] for g in t.opt.param_groups] == pytest.approx([1e-3, 1e-2])


def test_freeze_to_and_norm_layers_frozen_on_request():
    t = make(splitter=lambda m: [m[0].parameters(), m[1].parameters(), m[3].parameters()])
    t.freeze_to(1)
    assert [p.requires_grad for p in t.model.parameters()] == [False, False, True, True, True, True]
    t.freeze_to(-1, train_norm=False)
    assert [p.requires_grad for p in t.model.parameters()] == [False, False, False, False, True, True]
    before = clone(t.model)
    t.fit(1, lr=1e-2)
    assert torch.equal(t.model[1].weight, before['1.weight'])
    t.freeze(train_norm=True)
    assert [p.requires_grad for p in t.model.parameters()] == [False, False, True, True, True, True]
    with pytest.raises(ValueError, match="no group training"): t.freeze_to(3)
    t.unfreeze()
    assert all(p.requires_grad for p in t.model.parameters())


def test_freeze_without_a_splitter_warns():
    t = make(splitter=None)
    with pytest.warns(UserWarning, match="splitter"): t.freeze()
    assert all(p.requires_grad for p in t.model.parameters())


def adam_steps(opt): return {int(s['step']) for s in opt.state.values()}


def test_reset_opt_false_continues_adams_state_like_one_long_run():
    t = make(splitter=None)
    n = len(t.dls.train)
    t.fit(2, lr=1e-2)
    first = t.opt
    assert adam_steps(first) == {2 * n}
    t.fit(2, lr=1e-2, reset_opt=False)
    assert t.opt is first and adam_steps(t.opt) == {4 * n}  # the step count continues
    ref = make_model()
    hand_fit(ref, torch.optim.Adam(ref.parameters(), lr=1e-2), 4)
    for a, b in zip(t.model.parameters(), ref.parameters()): assert torch.allclose(a, b, atol=1e-6)
    t.fit(1, lr=1e-3)  # the default: a new optimizer, as in the tutorial
    assert t.opt is not first and adam_steps(t.opt) == {n}


def test_reset_opt_false_takes_the_new_lr_and_says_when_the_parameters_changed():
    t = make()
    t.fit(1, lr=slice(1e-3, 1e-2))
    t.fit(1, lr=slice(1e-4, 1e-3), reset_opt=False)
    assert [g['lr'] for g in t.opt.param_groups] == pytest.approx([1e-4, 1e-3])
    kept = t.opt
    t.model = make_model(seed=1)
    with pytest.warns(UserWarning, match="parameters .* changed"): t.fit(1, lr=1e-3, reset_opt=False)
    assert t.opt is not kept


# ---- the functions themselves ----
def test_spread_lrs_as_fastai_spreads_them():
    assert spread_lrs(1e-3, 3) == [1e-3] * 3
    assert spread_lrs(slice(1e-5, 1e-2), 4) == pytest.approx([1e-5, 1e-4, 1e-3, 1e-2])  # even on a log scale
    assert spread_lrs(slice(1e-5, 1e-2), 1) == [1e-2]  # one group gets hi
    assert spread_lrs(slice(1e-2), 3) == pytest.approx([1e-3, 1e-3, 1e-2])
    assert spread_lrs((1e-3, 2e-3), 2) == [1e-3, 2e-3]
    with pytest.raises(ValueError, match="lr has 3 learning rates but the splitter makes 2 parameter groups"):
        spread_lrs([1e-3] * 3, 2)


def test_check_lr_takes_numpy_numbers_and_refuses_the_rest():
    np = pytest.importorskip("numpy")
    assert type(check_lr(np.float32(0.5))) is float and check_lr(slice(np.float64(1e-4), 1e-2)) == slice(1e-4, 1e-2)
    assert check_lr(slice(1e-2)) == slice(None, 1e-2) and check_lr((1e-3, 1e-2)) == (1e-3, 1e-2)
    for bad in (0, -1.0, float("inf"), True, "1e-3", [], slice(1e-3, 1e-2, 2)):
        with pytest.raises(ValueError, match="lr must be a number > 0 and finite"): check_lr(bad)


def test_build_optimizers_with_a_splitter_gives_the_param_groups_written_by_hand():
    model = make_model()
    opts = build_optimizers(torch.optim.Adam, model, body_head_splitter, slice(1e-3, 1e-2))
    got = opts.single.param_groups
    body = [p for i in (0, 1) for p in model[i].parameters()]  # body_head_splitter: all but the last layer, the head
    hand = torch.optim.Adam([{"params": body, "lr": 1e-3}, {"params": list(model[3].parameters()), "lr": 1e-2}])
    assert [[id(p) for p in g["params"]] for g in got] == [[id(p) for p in g["params"]] for g in hand.param_groups]
    assert [g["lr"] for g in got] == pytest.approx([g["lr"] for g in hand.param_groups])
    assert opts.first is opts.single and list(opts.opts) == ["opt"]
    # Without a splitter and with one lr: the tutorial's call, opt_func(model.parameters(), lr), unchanged.
    calls = []
    def opt_func(params, lr):
        calls.append((list(params), lr))
        return torch.optim.SGD(calls[-1][0], lr)
    build_optimizers(opt_func, model, None, 0.1)
    assert [id(p) for p in calls[0][0]] == [id(p) for p in model.parameters()] and calls[0][1] == 0.1


def test_build_optimizers_takes_a_dict_of_named_optimizers_and_refuses_none():
    model = make_model()
    gan = build_optimizers(lambda params, lr: {"g": torch.optim.SGD(model[0].parameters(), lr),
                                               "d": torch.optim.SGD(model[3].parameters(), lr)}, model, None, 0.1)
    assert list(gan.opts) == ["g", "d"] and gan.single is None and gan.first is gan.opts["g"]
    with pytest.raises(TypeError, match="opt_func returned None for 'opt'; it must return an optimizer"):
        build_optimizers(lambda params, lr: None, model, None, 0.1)


def test_fit_optimizers_reuses_the_kept_ones_only_when_asked_and_the_parameters_are_the_same():
    model = make_model()
    kept = build_optimizers(torch.optim.Adam, model, body_head_splitter, slice(1e-3, 1e-2))
    kept.single.param_groups[0]["initial_lr"] = 1e-3  # as a scheduler leaves it
    assert fit_optimizers(kept, torch.optim.Adam, model, body_head_splitter, slice(1e-4, 1e-3), True) is not kept
    again = fit_optimizers(kept, torch.optim.Adam, model, body_head_splitter, slice(1e-4, 1e-3), False)
    assert again is kept and [g["lr"] for g in kept.single.param_groups] == pytest.approx([1e-4, 1e-3])
    assert "initial_lr" not in kept.single.param_groups[0]  # a new scheduler starts from the new lr
    assert fit_optimizers(None, torch.optim.Adam, model, None, 1e-3, False).single is not kept.single
    with pytest.warns(UserWarning, match="parameters .* changed"):
        new = fit_optimizers(kept, torch.optim.Adam, make_model(), body_head_splitter, 1e-3, False)
    assert new is not kept


def test_freeze_to_sets_requires_grad_as_by_hand_and_drops_the_frozen_optimizer_state():
    model = make_model()
    splitter = lambda m: [m[0].parameters(), m[1].parameters(), m[3].parameters()]  # noqa: E731
    opt = torch.optim.Adam(model.parameters())
    nn.functional.cross_entropy(model(torch.randn(4, 4)), torch.tensor([0, 1, 0, 1])).backward()
    opt.step()
    freeze_to(model, splitter, [opt], 2, train_norm=False)
    hand = make_model()
    for p in [*hand[0].parameters(), *hand[1].parameters()]: p.requires_grad_(False)
    assert [p.requires_grad for p in model.parameters()] == [p.requires_grad for p in hand.parameters()]
    assert all(p.grad is None and p not in opt.state for p in [*model[0].parameters(), *model[1].parameters()])
    assert all(p.grad is not None and p in opt.state for p in model[3].parameters())
    freeze_to(model, splitter, [opt], -2)  # counted from the end: the last two groups train
    assert [p.requires_grad for p in model.parameters()] == [False, False, True, True, True, True]
    freeze_to(model, splitter, [opt], 0)
    assert all(p.requires_grad for p in model.parameters())
    with pytest.raises(ValueError, match=r"freeze_to\(-4\) would leave no group training: the splitter makes 3"):
        freeze_to(model, splitter, [opt], -4)
