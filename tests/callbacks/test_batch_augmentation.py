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


class Appender:
    '''A later callback that appends to the batch, as the original's DreamBooth step does'''

    def __init__(self): self.lengths = []
    def before_batch(self, trainer):
        trainer.batch.append(trainer.batch[0].sum(1))
        self.lengths.append(len(trainer.batch))


def test_the_originals_form_transforms_every_batch_and_the_batch_stays_a_list():
    # (inputs' transform, targets' transform): the batch's data itself, in validation too, as in the original.
    x, y = torch.randn(8, 3), torch.randn(8, 1)
    rec, app = TargetRecorder(), Appender()
    trainer, model = make(x, y, [BatchAugmentationCB((lambda b: b * 2, lambda t: t + 1)), app, rec])
    trainer.loss_func = lambda preds, y, appended: nn.functional.mse_loss(preds, y)
    trainer.fit(1, lr=0.01)
    assert torch.equal(torch.cat([b for _, b in model.seen]), torch.cat([x * 2, x * 2]))
    assert torch.equal(torch.cat([t for _, t in rec.targets]), torch.cat([y + 1, y + 1]))
    assert [t for t, _ in model.seen] == [True, True, False, False] and app.lengths == [3] * 4


def test_random_augmentation_of_the_inputs_leaves_validation_alone():
    transforms = pytest.importorskip("torchvision.transforms")
    x, y = torch.randn(8, 1, 4, 4), torch.randn(8, 1)

    class Conv(Recorder):
        def __init__(self):
            super().__init__()
            self.lin = nn.Sequential(nn.Flatten(), nn.Linear(16, 1))

    for tfms in (transforms.RandomErasing(p=1.0, value=9.0), [transforms.RandomErasing(p=1.0, value=9.0), None]):
        dls = DataLoaders(DataLoader(TensorDataset(x, y), batch_size=4), DataLoader(TensorDataset(x, y), batch_size=4))
        model = Conv()
        Trainer(dls, nn.MSELoss(), torch.optim.SGD, model, [DeviceCB('cpu'), BasicTrainCB(),
                                                            BatchAugmentationCB(tfms)]).fit(1, lr=0.01)
        train = torch.cat([b for t, b in model.seen if t])
        valid = torch.cat([b for t, b in model.seen if not t])
        assert (train == 9).any() and torch.equal(valid, x)


def test_on_valid_per_position():
    x, y = torch.randn(8, 3), torch.randn(8, 1)
    rec = TargetRecorder()
    trainer, model = make(x, y, [BatchAugmentationCB([lambda b: b * 2, lambda t: -t], on_valid=(False, True)), rec])
    trainer.fit(1, lr=0.01)
    valid = torch.cat([b for t, b in model.seen if not t])
    assert torch.equal(valid, x) and torch.equal(torch.cat([t for _, t in rec.targets]), torch.cat([-y, -y]))
    with pytest.raises(ValueError, match="one per position"): BatchAugmentationCB([None, None], on_valid=(True,))
    off = BatchAugmentationCB((lambda b: b, lambda t: t), on_valid=False)
    assert off.valid_tfms() == (None, None) and BatchAugmentationCB(abs, on_valid=True).valid_tfms() == (abs,)


def test_tensors_made_from_strings_go_to_the_models_device():
    # A tokenizer's ids: DeviceCB could not move the strings, so its output is moved where the model is.
    tokenize = lambda prompts: torch.tensor([[len(p)] for p in prompts])  # noqa: E731
    model = nn.Linear(2, 2, device="meta")
    aug = BatchAugmentationCB([None, tokenize])
    out = aug.apply((torch.zeros(2, 2), ("a dog", "a photo")), model=model)
    assert isinstance(out, list) and out[1].device.type == "meta" and out[0].device.type == "cpu"
    assert torch.equal(aug.apply((torch.zeros(2, 2), ("a dog", "a photo")))[1], torch.tensor([[5], [7]]))


def test_batch_forms():
    from collections import namedtuple
    Pair = namedtuple("Pair", "x y")
    aug = BatchAugmentationCB(lambda b: b + 1)
    assert type(aug.apply(Pair(torch.zeros(1), torch.zeros(1)))) is Pair
    assert type(aug.apply((torch.zeros(1), torch.zeros(1)))) is list
    assert torch.equal(aug.apply(torch.zeros(2)), torch.ones(2))  # a tensor batch: the inputs alone
    with pytest.raises(TypeError, match="position by position.*keys \\['x'\\]"): aug.apply({'x': torch.zeros(1)})
