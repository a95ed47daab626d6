import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from AIsaac.all import BasicTrainCB, BatchAugmentationCB, DataLoaders, DeviceCB, Trainer


class Recorder(nn.Module):
    """A linear model that keeps every input it is called with, and whether it was training."""

    def __init__(self):
        super().__init__()
        self.lin, self.seen = nn.Linear(3, 1), []

    def forward(self, x):
        self.seen.append((self.training, x.clone()))
        return self.lin(x)


class TargetRecorder:
    def __init__(self): self.targets = []
    def after_batch(self, trainer): self.targets.append((trainer.training, trainer.batch[1].clone()))


def make(x, y, cbs):
    dls = DataLoaders(DataLoader(TensorDataset(x, y), batch_size=4), DataLoader(TensorDataset(x, y), batch_size=4))
    model = Recorder()
    return Trainer(dls, nn.MSELoss(), torch.optim.SGD, model, [DeviceCB('cpu'), BasicTrainCB(), *cbs]), model


def test_inputs_transformed_in_training_only():
    x, y = torch.randn(8, 3), torch.randn(8, 1)
    trainer, model = make(x, y, [BatchAugmentationCB(lambda b: b * 2 + 1)])
    trainer.fit(1, lr=0.01)
    train = torch.cat([b for t, b in model.seen if t])
    valid = torch.cat([b for t, b in model.seen if not t])
    torch.testing.assert_close(train, x * 2 + 1)
    torch.testing.assert_close(valid, x)


def test_per_position_list_and_on_valid():
    x, y = torch.randn(8, 3), torch.randn(8, 1)
    rec = TargetRecorder()
    trainer, model = make(x, y, [BatchAugmentationCB([None, lambda t: -t], on_valid=True), rec])
    trainer.fit(1, lr=0.01)
    assert torch.equal(torch.cat([b for _, b in model.seen]), torch.cat([x, x]))
    assert torch.equal(torch.cat([t for _, t in rec.targets]), torch.cat([-y, -y]))
    assert [t for t, _ in rec.targets] == [True, True, False, False]


def test_runs_after_device_cb():
    aug, dev = BatchAugmentationCB(lambda b: b), DeviceCB('cpu')
    trainer, _ = make(torch.randn(8, 3), torch.randn(8, 1), [aug])
    owners = [m.__self__ for m in trainer.plan['before_batch']]
    assert owners.index(trainer.DeviceCB) < owners.index(aug)
    assert DeviceCB.order < BatchAugmentationCB.order < 0


def test_apply_keeps_extra_positions_and_type():
    aug = BatchAugmentationCB(lambda b: b + 1)
    out = aug.apply([torch.zeros(2), torch.ones(2), 'meta'])
    assert isinstance(out, list) and torch.equal(out[0], torch.ones(2)) and out[2] == 'meta'


def test_bad_arguments():
    with pytest.raises(TypeError, match="callable"): BatchAugmentationCB(3)
    with pytest.raises(TypeError, match=r"tfms\[1\]"): BatchAugmentationCB([None, 'flip'])
    with pytest.raises(ValueError, match="at most one transform per position"):
        BatchAugmentationCB([None, None, None]).apply((torch.zeros(1), torch.zeros(1)))
