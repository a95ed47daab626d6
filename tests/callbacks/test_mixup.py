"""MixUpCB and CutMixCB mix training batches as a hand computation with the same RNG does, and train a classifier as
the hand-written MixUp loop does; BatchTransformCB is the way to write such a transform."""
import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from AIsaac.all import (Accuracy, BasicTrainCB, BatchTransformCB, CutMixCB, DataLoaders, MetricsCB, MixUpCB, Trainer,
                        join_batch, split_batch)


def test_mixup_equals_the_hand_computation():
    x, y = torch.randn(16, 3, 5, 5), torch.randint(0, 4, (16,))
    torch.manual_seed(3)
    (mx,), (my,) = MixUpCB(0.4, num_classes=4).transform((x,), (y,))
    torch.manual_seed(3)
    lam = torch.distributions.Beta(torch.tensor(0.4), torch.tensor(0.4)).sample()
    perm = torch.randperm(16)
    one_hot = F.one_hot(y, 4).float()
    assert torch.equal(mx, lam * x + (1 - lam) * x[perm])
    assert torch.equal(my, lam * one_hot + (1 - lam) * one_hot[perm])
    assert 0 < lam < 1 and not torch.equal(mx, x) and torch.allclose(my.sum(1), torch.ones(16))


def test_cutmix_equals_the_hand_computation():
    x, y = torch.randn(8, 2, 10, 12), torch.randint(0, 3, (8,))
    torch.manual_seed(5)
    (mx,), (my,) = CutMixCB(1.0, num_classes=3).transform((x,), (y,))
    torch.manual_seed(5)  # the same draws, read on the host: lam, the permutation, the box centre (row, column)
    lam = torch.distributions.Beta(torch.tensor(1.), torch.tensor(1.)).sample().item()
    perm = torch.randperm(8)
    cy, cx = torch.randint(10, ()).item(), torch.randint(12, ()).item()
    cut = math.sqrt(1 - lam)
    hh, hw = math.floor(10 * cut / 2), math.floor(12 * cut / 2)
    y1, y2, x1, x2 = max(cy - hh, 0), min(cy + hh, 10), max(cx - hw, 0), min(cx + hw, 12)
    want = x.clone()
    want[:, :, y1:y2, x1:x2] = x[perm][:, :, y1:y2, x1:x2]
    assert torch.equal(mx, want) and 0 < (y2 - y1) * (x2 - x1) < 120
    kept = 1 - (y2 - y1) * (x2 - x1) / 120
    one_hot = F.one_hot(y, 3).float()
    torch.testing.assert_close(my, kept * one_hot + (1 - kept) * one_hot[perm])


def test_cutmix_needs_images():
    with pytest.raises(ValueError, match="MixUpCB for other inputs"): CutMixCB().transform((torch.randn(4, 3),), ())


def test_refusals():
    for bad in (0, -1., True, "0.4"):
        with pytest.raises(ValueError, match="alpha"): MixUpCB(bad)
    with pytest.raises(ValueError, match="num_classes"): MixUpCB(num_classes=0)


def data(n_train=512, n_valid=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n_train + n_valid, 6, generator=g)
    y = (x @ torch.randn(6, 3, generator=g)).argmax(1)
    return DataLoaders(DataLoader(TensorDataset(x[:n_train], y[:n_train]), batch_size=32),
                       DataLoader(TensorDataset(x[n_train:], y[n_train:]), batch_size=64))


def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, 3))


def hand_mixup(model, dls, epochs, lr, alpha):
    """MixUp in plain PyTorch; returns the valid accuracy after each epoch."""
    opt, accs = torch.optim.Adam(model.parameters(), lr), []
    a = torch.tensor(alpha)
    for _ in range(epochs):
        model.train()
        for x, y in dls.train:
            lam = torch.distributions.Beta(a, a).sample()
            perm = torch.randperm(len(x))
            one_hot = F.one_hot(y, 3).float()
            loss = F.cross_entropy(model(lam * x + (1 - lam) * x[perm]), lam * one_hot + (1 - lam) * one_hot[perm])
            loss.backward()
            opt.step()
            opt.zero_grad()
        model.eval()
        with torch.no_grad():
            accs.append(sum((model(x).argmax(1) == y).sum().item() for x, y in dls.valid) / 256)
    return accs


@pytest.mark.parametrize("num_classes", [None, 3])
def test_mixup_trains_a_classifier_as_the_hand_loop_does(num_classes):
    dls, model = data(), mlp()
    ref = copy.deepcopy(model)

    class ValidAcc:
        order = 20
        def before_fit(self, trainer): self.accs = []
        def cleanup_epoch(self, trainer):
            if not trainer.training: self.accs.append(trainer.epoch_log['Accuracy'])

    rec = ValidAcc()
    t = Trainer(dls, nn.CrossEntropyLoss(), torch.optim.Adam, model,
                [BasicTrainCB(), MetricsCB(Accuracy=Accuracy()), MixUpCB(0.4, num_classes=num_classes), rec])
    torch.manual_seed(1)
    t.fit(8, lr=0.01)
    torch.manual_seed(1)
    hand = hand_mixup(ref, dls, 8, 0.01, 0.4)
    for p, q in zip(model.parameters(), ref.parameters()): assert torch.equal(p, q)
    assert rec.accs == pytest.approx(hand, abs=1e-6) and hand[-1] >= 0.9
    assert t.MixUpCB.num_classes == 3


class SeenBatches:
    order = 100
    def before_fit(self, trainer): self.seen = []
    def get_loss(self, trainer): self.seen.append((trainer.training, trainer.xb[0].clone(), trainer.yb[0].clone()))
    observes = ('get_loss',)


def test_validation_batches_are_untouched():
    dls, rec = data(64, 64), SeenBatches()
    Trainer(dls, nn.CrossEntropyLoss(), torch.optim.SGD, mlp(), [BasicTrainCB(), MixUpCB(), rec]).fit(1)
    train = [s for s in rec.seen if s[0]]
    valid = [s for s in rec.seen if not s[0]]
    x, y = dls.valid.dataset.tensors
    assert torch.equal(torch.cat([s[1] for s in valid]), x) and torch.equal(torch.cat([s[2] for s in valid]), y)
    assert all(s[2].dtype == torch.float32 and s[2].shape[1] == 3 for s in train)  # soft labels in training


def test_join_batch_undoes_split_batch():
    x, y = torch.zeros(2), torch.ones(2)
    for batch, n_inp in [((x, y), 1), ([x, y, y], 2), (x, 1), ({"a": x, "labels": y}, 1), ({"a": x, "label": y}, 1)]:
        xb, yb = split_batch(batch, n_inp)
        out = join_batch(batch, xb, yb)
        assert type(out) is type(batch) and split_batch(out, n_inp) == (xb, yb) or \
            (isinstance(out, dict) and out == batch)
    assert join_batch(x, (x, y), ()) == (x, y)  # a tensor batch that gained an input


class TwoViews(BatchTransformCB):
    '''Two views of each input, no targets: the contrastive setting (the docs' example)'''

    def transform(self, xb, yb):
        x = xb[0]
        return (x + 0.1 * torch.randn_like(x), x + 0.1 * torch.randn_like(x)), ()


class Siamese(nn.Module):
    def __init__(self):
        super().__init__()
        self.enc = mlp()

    def forward(self, a, b): return F.normalize(self.enc(a), dim=1), F.normalize(self.enc(b), dim=1)


def info_nce(preds, tau=0.5):
    a, b = preds
    logits = a @ b.T / tau
    return F.cross_entropy(logits, torch.arange(len(a)))


def test_a_transform_of_your_own_and_a_loss_of_predictions_only():
    dls = data(128, 64)
    model = Siamese()
    ref = copy.deepcopy(model)
    t = Trainer(dls, info_nce, torch.optim.SGD, model, [BasicTrainCB(n_inp=2), MetricsCB(), TwoViews()])
    torch.manual_seed(2)
    t.fit(2, lr=0.1, valid=False)
    torch.manual_seed(2)  # by hand
    opt = torch.optim.SGD(ref.parameters(), lr=0.1)
    losses = []
    for _ in range(2):
        for x, _y in dls.train:
            loss = info_nce(ref(x + 0.1 * torch.randn_like(x), x + 0.1 * torch.randn_like(x)))
            loss.backward()
            opt.step()
            opt.zero_grad()
            losses.append(loss.item())
    for p, q in zip(model.parameters(), ref.parameters()): assert torch.equal(p, q)
    assert t.epoch_log['train'] == pytest.approx(sum(losses[4:]) / 4, rel=1e-6)


class StopAt:
    def __init__(self, at): self.at = at

    def after_batch(self, trainer):
        if trainer.training and (trainer.epoch, trainer.batch_num) == self.at: raise KeyboardInterrupt


@pytest.mark.parametrize("make_cb", [lambda: MixUpCB(0.4), lambda: CutMixCB(1.0)])
def test_a_killed_fit_resumes_bit_exactly(tmp_path, make_cb):
    from AIsaac.all import CheckpointCB
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(96, 1, 6, 6, generator=g), torch.randint(0, 3, (96,), generator=g)
    dls = DataLoaders(DataLoader(TensorDataset(x[:64], y[:64]), batch_size=8, shuffle=True),
                      DataLoader(TensorDataset(x[64:], y[64:]), batch_size=16))

    def make():
        torch.manual_seed(0)
        return Trainer(dls, nn.CrossEntropyLoss(), torch.optim.Adam, nn.Sequential(nn.Flatten(), nn.Linear(36, 3)),
                       [BasicTrainCB(), MetricsCB(Accuracy=Accuracy()), make_cb()])

    full = make()
    torch.manual_seed(1)
    full.fit(3, lr=0.01)
    killed = make()
    torch.manual_seed(1)
    with pytest.raises(KeyboardInterrupt):
        killed.fit(3, lr=0.01, callbacks=[CheckpointCB(tmp_path, every_n_batches=3), StopAt((1, 4))])
    resumed = make()
    resumed.fit(3, lr=0.01, resume_from=tmp_path, allow_changes=("callbacks",))
    for p, q in zip(resumed.model.parameters(), full.model.parameters()): assert torch.equal(p, q)
    assert resumed.MetricsCB.losses_epoch == full.MetricsCB.losses_epoch


class _DictImages(torch.utils.data.Dataset):
    """Hugging Face style items: {'pixel_values': image, 'labels': class}."""

    def __init__(self, n=16):
        g = torch.Generator().manual_seed(0)
        self.x, self.y = torch.randn(n, 1, 6, 6, generator=g), torch.randint(0, 3, (n,), generator=g)

    def __len__(self): return len(self.x)
    def __getitem__(self, i): return {"pixel_values": self.x[i], "labels": self.y[i]}


class _DictModel(nn.Module):
    def __init__(self): super().__init__(); self.lin = nn.Linear(36, 3)
    def forward(self, pixel_values, labels=None): return self.lin(pixel_values.flatten(1))


@pytest.mark.parametrize("cb", [MixUpCB(0.4), CutMixCB(1.0)], ids=["MixUp", "CutMix"])
def test_mixing_trains_on_mapping_batches(cb):
    """Issue 33: a dict batch (Hugging Face style) failed with `'dict' object has no attribute 'device'`; its float
    tensor (pixel_values) is mixed, the targets become soft labels."""
    ds = _DictImages()
    dls = DataLoaders(DataLoader(ds, batch_size=8, shuffle=True), DataLoader(ds, batch_size=8))
    seen = []

    class Watch:
        order, observes = 99, ("get_loss",)
        def get_loss(self, trainer):
            if trainer.training: seen.append((trainer.xb[0]["pixel_values"].clone(), trainer.yb[0].clone()))
    torch.manual_seed(0)
    Trainer(dls, nn.CrossEntropyLoss(), torch.optim.SGD, _DictModel(), [BasicTrainCB(), cb, Watch()]).fit(1)
    x, y = seen[0]
    assert x.shape == (8, 1, 6, 6) and y.shape == (8, 3) and y.is_floating_point()
    torch.testing.assert_close(y.sum(1), torch.ones(8))
    ints = {"input_ids": torch.zeros(4, 5, dtype=torch.long), "labels": torch.zeros(4, dtype=torch.long)}
    with pytest.raises(TypeError, match="no floating-point tensor"): MixUpCB().apply(ints)
