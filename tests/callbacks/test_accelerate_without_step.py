"""AccelerateCB used the original's way: alone as the whole training step (`[AccelerateCB(), DeviceCB(), ...]`), and
subclassed as the original's tutorials do; beside a step callback it does only the backward, as documented here."""
import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from AIsaac.all import AccelerateCB, BasicTrainCB, BatchAugmentationCB, DataLoaders, DeviceCB, MetricsCB, Trainer

pytest.importorskip("accelerate")


def data():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(24, 4, generator=g), torch.randint(0, 2, (24,), generator=g)
    return DataLoaders(DataLoader(TensorDataset(x[:16], y[:16]), batch_size=4),
                       DataLoader(TensorDataset(x[16:], y[16:]), batch_size=4))


def start_model():
    torch.manual_seed(0)
    return nn.Linear(4, 2)


def hand_loop(model, dls, lr=0.1, epochs=2, tfm=lambda x: x):
    opt = torch.optim.SGD(model.parameters(), lr)
    for _ in range(epochs):
        for xb, yb in dls.train:
            F.cross_entropy(model(tfm(xb)), yb).backward()
            opt.step()
            opt.zero_grad()
    return model


def assert_same(a, b):
    for p, q in zip(a.parameters(), b.parameters()): torch.testing.assert_close(p, q)


def test_alone_it_is_the_whole_step_and_trains_like_plain_pytorch():
    dls, model = data(), start_model()
    ref = hand_loop(copy.deepcopy(model), dls)
    t = Trainer(dls, F.cross_entropy, torch.optim.SGD, model, [AccelerateCB(cpu=True), DeviceCB("cpu"), MetricsCB()])
    for phase in ("predict", "get_loss", "backward", "step", "zero_grad"):
        assert [m.__self__ for m in t.plan[phase]] == [t.AccelerateCB], phase
    t.fit(2, lr=0.1)
    assert_same(model, ref)
    assert t.model is model and type(t.opt) is torch.optim.SGD  # restored after the fit
    assert len(t.MetricsCB.losses_epoch) == 2


def test_beside_a_step_callback_it_does_only_the_backward():
    # Two inputs: BasicTrainCB(n_inp=2) splits the batch, AccelerateCB's own plain step gives way to it.
    g = torch.Generator().manual_seed(1)
    a, b, y = torch.randn(16, 2, generator=g), torch.randn(16, 2, generator=g), torch.randint(0, 2, (16,), generator=g)
    dls = DataLoaders(DataLoader(TensorDataset(a, b, y), batch_size=4), None)

    class TwoInputs(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.lin = nn.Linear(4, 2)
        def forward(self, a, b): return self.lin(torch.cat([a, b], 1))

    model, ref = TwoInputs(), TwoInputs()
    t = Trainer(dls, F.cross_entropy, torch.optim.SGD, model, [AccelerateCB(cpu=True), BasicTrainCB(n_inp=2)])
    assert t.AccelerateCB.yields == ("predict", "get_loss", "step", "zero_grad")
    for phase in ("predict", "get_loss", "step", "zero_grad"):
        assert [m.__self__ for m in t.plan[phase]] == [t.BasicTrainCB], phase
    assert [m.__self__ for m in t.plan["backward"]] == [t.AccelerateCB]
    t.fit(2, lr=0.1)
    opt = torch.optim.SGD(ref.parameters(), 0.1)
    for _ in range(2):
        for xa, xb, yb in dls.train:
            F.cross_entropy(ref(xa, xb), yb).backward()
            opt.step()
            opt.zero_grad()
    assert_same(model, ref) and t.n_inp == 2


def test_a_subclass_with_its_own_init_keeps_its_accelerator_and_every_guarantee():
    from accelerate import Accelerator
    order = []

    class MyAccelerateCB(AccelerateCB):
        def __init__(self, weight):  # no super().__init__(), as the original's DreamBoothTrainCB
            self.weight = weight
            self.acc = Accelerator(cpu=True)
        def before_fit(self, trainer):
            super().before_fit(trainer)
            order.append("prepared")
        def before_batch(self, trainer): order.append(("batch", trainer.batch[0].clone()))
        def get_loss(self, trainer): trainer.loss = self.weight * trainer.loss_func(trainer.preds, trainer.batch[1])

    dls, model = data(), start_model()
    cb = MyAccelerateCB(2.0)
    acc = cb.acc
    t = Trainer(dls, F.cross_entropy, torch.optim.SGD, model, [cb, BatchAugmentationCB(lambda x: x * 3)])
    t.fit(1, lr=0.05)
    # Twice the loss is twice the step, for SGD.
    ref = hand_loop(copy.deepcopy(start_model()), dls, lr=0.1, epochs=1, tfm=lambda x: x * 3)
    assert_same(model, ref)
    assert cb.acc is acc and t.model is model  # its accelerator used; model, optimizer and loaders restored
    # Its before_batch runs after the batch transforms, as the original's did: it sees the inputs tripled.
    assert order[0] == "prepared" and torch.equal(order[1][1], next(iter(dls.train))[0] * 3)


def test_a_subclass_replacing_before_fit_gets_the_originals_behaviour():
    from accelerate import Accelerator

    class OriginalAccelerateCB(AccelerateCB):
        def __init__(self): self.acc = Accelerator(cpu=True)
        def before_fit(self, trainer):  # the original's AccelerateCB.before_fit, word for word
            trainer.model, trainer.opt, trainer.dls.train, trainer.dls.valid = self.acc.prepare(
                trainer.model, trainer.opt, trainer.dls.train, trainer.dls.valid)

    dls, model = data(), start_model()
    ref = hand_loop(copy.deepcopy(model), dls)
    cb = OriginalAccelerateCB()
    t = Trainer(dls, F.cross_entropy, torch.optim.SGD, model, [cb, MetricsCB()])
    t.fit(2, lr=0.1)  # no AttributeError from state its before_fit never set
    assert_same(cb.acc.unwrap_model(t.model), ref)
    assert type(t.opt) is not torch.optim.SGD  # left prepared, as in the original: it stepped the prepared optimizer
    assert len(t.MetricsCB.losses_epoch) == 2 and t.num_processes == 1
