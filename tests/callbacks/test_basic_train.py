"""BasicTrainCB gives exactly what a hand-written PyTorch loop gives."""
import copy
from functools import partial

import torch
from torch import nn

from AIsaac.all import BasicTrainCB, Trainer


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
