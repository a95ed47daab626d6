"""`BatchTransformCB` (AIsaac/callbacks/batch_transform.py): `transform(xb, yb)` replaces the training batches (and,
when asked, the validation ones) before the step sees them; a fit with it equals the hand loop on transformed batches."""
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from AIsaac.all import BasicTrainCB, BatchTransformCB, CallbackError, DataLoaders, MetricsCB, Trainer


def data():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(48, 4, generator=g), torch.randn(48, 1, generator=g)
    return (x[:32], y[:32]), (x[32:], y[32:])


def make(*cbs):
    (xt, yt), (xv, yv) = data()
    dls = DataLoaders(DataLoader(TensorDataset(xt, yt), batch_size=8), DataLoader(TensorDataset(xv, yv), batch_size=8))
    torch.manual_seed(0)
    return Trainer(dls, nn.MSELoss(), torch.optim.SGD, nn.Linear(4, 1), [BasicTrainCB(), MetricsCB(), *cbs])


class Affine(BatchTransformCB):
    """Scales the inputs and shifts the targets: both change together."""

    def transform(self, xb, yb): return (xb[0] * 2 + 1,), (yb[0] - 0.5,)


def hand_fit(n_epochs, lr=0.1):
    (xt, yt), _ = data()
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    for _ in range(n_epochs):
        for xb, yb in DataLoader(TensorDataset(xt, yt), batch_size=8):
            nn.functional.mse_loss(model(xb * 2 + 1), yb - 0.5).backward()
            opt.step()
            opt.zero_grad()
    return model


def test_training_batches_are_transformed_as_a_hand_loop_does_and_validation_is_left_alone():
    t = make(Affine())
    t.fit(2, lr=0.1)
    ref = hand_fit(2)
    for a, b in zip(t.model.parameters(), ref.parameters()): torch.testing.assert_close(a, b)
    _, (xv, yv) = data()
    with torch.no_grad(): hand_valid = nn.functional.mse_loss(ref(xv), yv).item()
    assert t.epoch_log["valid"] == pytest.approx(hand_valid, rel=1e-5)  # the untouched batches


def test_on_valid_transforms_validation_batches_too_and_on_train_false_leaves_training_alone():
    t = make(Affine(on_valid=True))
    t.fit(1, lr=0.1)
    ref = hand_fit(1)
    _, (xv, yv) = data()
    with torch.no_grad(): hand_valid = nn.functional.mse_loss(ref(xv * 2 + 1), yv - 0.5).item()
    assert t.epoch_log["valid"] == pytest.approx(hand_valid, rel=1e-5)
    plain, only_valid = make(), make(Affine(on_train=False, on_valid=True))
    plain.fit(1, lr=0.1)
    only_valid.fit(1, lr=0.1)
    for a, b in zip(plain.model.parameters(), only_valid.model.parameters()): assert torch.equal(a, b)
    assert only_valid.epoch_log["valid"] != pytest.approx(plain.epoch_log["valid"])


def test_a_transform_that_is_not_written_says_what_to_define():
    with pytest.raises(CallbackError, match=r"BatchTransformCB must define transform\(xb, yb\), returning the new "
                                            r"\(xb, yb\)\."):
        make(BatchTransformCB()).fit(1)


def test_apply_keeps_the_kind_of_batch():
    cb = Affine()
    x, y = torch.ones(2, 4), torch.zeros(2, 1)
    out = cb.apply([x, y])
    assert isinstance(out, list) and torch.equal(out[0], x * 3) and torch.equal(out[1], y - 0.5)
    out = cb.apply((x, y))
    assert isinstance(out, tuple) and len(out) == 2
