"""BasicTrainCB gives exactly what a hand-written PyTorch loop gives."""
import copy
from functools import partial

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from AIsaac.all import BasicTrainCB, CallbackError, DataLoaders, Trainer


def hand_loop(model, dls, opt_func, lr, epochs):
    opt = opt_func(model.parameters(), lr)
    loss_func = nn.CrossEntropyLoss()
    for _ in range(epochs):
        model.train()
        for xb, yb in dls.train:
            loss = loss_func(model(xb), yb)
            loss.backward()
            opt.step()
            opt.zero_grad()
        model.eval()
        with torch.no_grad():
            for xb, yb in dls.valid: model(xb)
    return model


def test_matches_hand_written_loop_sgd_and_adam(tiny_dls, tiny_model):
    for opt_func in (partial(torch.optim.SGD, momentum=0.9), torch.optim.Adam):
        ours, ref = copy.deepcopy(tiny_model), copy.deepcopy(tiny_model)
        Trainer(tiny_dls, nn.CrossEntropyLoss(), opt_func, ours, callbacks=[BasicTrainCB()]).fit(3, lr=0.05)
        hand_loop(ref, tiny_dls, opt_func, 0.05, 3)
        for a, b in zip(ours.parameters(), ref.parameters()): assert torch.equal(a, b)
        assert not torch.equal(ours.weight, tiny_model.weight)


def test_sets_preds_and_loss(tiny_dls, tiny_model):
    tr = Trainer(tiny_dls, nn.CrossEntropyLoss(), torch.optim.SGD, tiny_model, callbacks=[BasicTrainCB()])
    tr.fit(1, train=False)
    xb, yb = tr.batch
    torch.testing.assert_close(tr.preds, tiny_model(xb))
    torch.testing.assert_close(tr.loss, nn.functional.cross_entropy(tiny_model(xb), yb))


def spread(preds):
    """A loss of the predictions alone (no targets): pull the two halves of the batch together, push rows apart."""
    a, b = preds.chunk(2)
    return (a - b).pow(2).mean() - 0.1 * preds.var(0).mean()


def test_a_loss_of_predictions_only_trains_on_batches_without_targets(tiny_model):
    import pytest
    from torch.utils.data import DataLoader, TensorDataset
    from AIsaac.all import DataLoaders, MetricsCB
    x = torch.randn(32, 6, generator=torch.Generator().manual_seed(0))
    dls = DataLoaders(DataLoader(TensorDataset(x), batch_size=8), DataLoader(TensorDataset(x[:16]), batch_size=8))
    ours, ref = copy.deepcopy(tiny_model), copy.deepcopy(tiny_model)
    t = Trainer(dls, spread, torch.optim.SGD, ours, callbacks=[BasicTrainCB(), MetricsCB()])
    t.fit(2, lr=0.1)
    assert t.yb == () and len(t.xb) == 1  # the batch (x,) has no targets: the loss is spread(preds)
    opt, losses = torch.optim.SGD(ref.parameters(), lr=0.1), []
    for _ in range(2):
        for (xb,) in dls.train:
            loss = spread(ref(xb))
            loss.backward()
            opt.step()
            opt.zero_grad()
    with torch.no_grad(): valid = sum(spread(ref(xb)).item() * 8 for (xb,) in dls.valid) / 16
    for a, b in zip(ours.parameters(), ref.parameters()): assert torch.equal(a, b)
    assert t.epoch_log['valid'] == pytest.approx(valid, rel=1e-6)
    # A loss that needs targets is still refused at the first batch, saying what to do.
    with pytest.raises(Exception, match="no targets"):
        Trainer(dls, nn.CrossEntropyLoss(), torch.optim.SGD, tiny_model, callbacks=[BasicTrainCB()]).fit(1)
# ---- subclassing, as the original AIsaac's tutorials do ----
def regression_data(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(48, 6, generator=g)
    y = x @ torch.randn(6, 2, generator=g)
    return DataLoaders(DataLoader(TensorDataset(x[:32], y[:32]), batch_size=8),
                       DataLoader(TensorDataset(x[32:], y[32:]), batch_size=8))


def hand_regression(model, dls, lr, epochs, loss=lambda p, y: F.mse_loss(p, y, reduction="mean")):
    opt = torch.optim.SGD(model.parameters(), lr)
    for _ in range(epochs):
        for xb, yb in dls.train:
            loss(model(xb), yb).backward()
            opt.step()
            opt.zero_grad()


@pytest.mark.parametrize("bound", ["partial", "fastcore"])
def test_keyword_losses_called_with_reduction_by_a_subclass_get_loss(bound):
    # The DreamBooth tutorial's loss: fc.bind(F.mse_loss, reduction="mean"), called again with reduction= by its step.
    if bound == "partial": loss_func = partial(F.mse_loss, reduction="mean")
    else: loss_func = pytest.importorskip("fastcore.all").bind(F.mse_loss, reduction="mean")

    class KeywordLossCB(BasicTrainCB):
        def __init__(self, weight): self.weight = weight  # no super().__init__()
        def get_loss(self, trainer):
            trainer.loss = self.weight * trainer.loss_func(trainer.preds, trainer.batch[1], reduction="mean")

    dls = regression_data()
    torch.manual_seed(0)
    start = nn.Linear(6, 2).state_dict()
    ours, plain, ref, ref_plain = (nn.Linear(6, 2) for _ in range(4))
    for m in (ours, plain, ref, ref_plain): m.load_state_dict(start)
    Trainer(dls, loss_func, torch.optim.SGD, ours, [KeywordLossCB(0.5)]).fit(2, lr=0.1)
    hand_regression(ref, dls, 0.1, 2, loss=lambda p, y: 0.5 * F.mse_loss(p, y, reduction="mean"))
    for a, b in zip(ours.parameters(), ref.parameters()): torch.testing.assert_close(a, b)
    # The same loss called the plain way by BasicTrainCB: loss_func(preds, *targets).
    Trainer(dls, loss_func, torch.optim.SGD, plain, [BasicTrainCB()]).fit(2, lr=0.1)
    hand_regression(ref_plain, dls, 0.1, 2)
    for a, b in zip(plain.parameters(), ref_plain.parameters()): torch.testing.assert_close(a, b)
    assert not torch.equal(plain.weight, start["weight"])


def test_a_subclass_replacing_init_and_before_fit_runs_the_first_batch_checks_at_every_fit(tiny_dls, tiny_model):
    seen = []

    class OwnSetupCB(BasicTrainCB):
        def __init__(self, tag): self.tag = tag  # neither super().__init__() ...
        def before_fit(self, trainer): seen.append(self.tag)  # ... nor super().before_fit()

    ref = copy.deepcopy(tiny_model)
    trainer = Trainer(tiny_dls, nn.CrossEntropyLoss(), torch.optim.SGD, tiny_model, [OwnSetupCB("mine")])
    trainer.fit(2, lr=0.05)
    hand_loop(ref, tiny_dls, torch.optim.SGD, 0.05, 2)
    for a, b in zip(tiny_model.parameters(), ref.parameters()): assert torch.equal(a, b)
    assert seen == ["mine"]
    # A second fit on other data is checked afresh (not taken as the first fit's): a label outside the 3 classes.
    x, y = torch.randn(8, 6), torch.full((8,), 5)
    trainer.dls = DataLoaders(DataLoader(TensorDataset(x, y), batch_size=4), None)
    with pytest.raises(CallbackError, match=r"Labels \[5\] are not among the model's 3 classes"): trainer.fit(1)


def _fit_with(y, loss, train=True):
    x = torch.randn(16, 4)
    dls = DataLoaders(DataLoader(TensorDataset(x, y), batch_size=8), DataLoader(TensorDataset(x, y), batch_size=8))
    Trainer(dls, loss, torch.optim.SGD, nn.Linear(4, 3), [BasicTrainCB()]).fit(1, train=train)


def test_cross_entropy_with_a_column_of_labels_names_the_squeeze():
    """Issue 33: (N, 1) class labels gave torch's raw '0D or 1D target tensor expected, multi-target not supported'."""
    y = torch.randint(0, 3, (16, 1))
    for loss in (nn.CrossEntropyLoss(), F.cross_entropy, nn.NLLLoss()):
        with pytest.raises(CallbackError, match=r"shape \(8, 1\).*y\.squeeze\(-1\)"): _fit_with(y, loss)


@pytest.mark.parametrize("train", [True, False])
def test_a_loss_of_more_than_one_number_names_the_reduction(train):
    """Issue 33: reduction='none' failed in backward ('grad can be implicitly created only for scalar outputs') or,
    with fit(train=False), in MetricsCB with a size mismatch."""
    with pytest.raises(CallbackError, match=r"shape \(8,\).*reduction='mean'"):
        _fit_with(torch.randint(0, 3, (16,)), nn.CrossEntropyLoss(reduction="none"), train=train)
