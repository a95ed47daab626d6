"""The checks a fit makes before any event runs (AIsaac/checks.py), hit as a user hits them: each error names the
problem and the fix, and nothing ran or changed before it."""
import functools

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, IterableDataset, TensorDataset

from AIsaac.all import BasicTrainCB, Callback, CallbackSetupError, DataLoaders, MetricsCB, Trainer
from AIsaac.checks import loader_length


def loaders(n_train=32, n_valid=16, bs=8, drop_last=False):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(n_train + n_valid, 4, generator=g), torch.randint(0, 2, (n_train + n_valid,), generator=g)
    return (DataLoader(TensorDataset(x[:n_train], y[:n_train]), batch_size=bs, drop_last=drop_last),
            DataLoader(TensorDataset(x[n_train:], y[n_train:]), batch_size=bs))


class Events(Callback):
    """Records every fit-level event it sees, and watches the training step without doing it."""

    observes = ("predict", "get_loss", "backward", "step", "zero_grad")

    def __init__(self): self.seen = []
    def before_fit(self, trainer): self.seen.append("before_fit")
    def step(self, trainer): self.seen.append("step")


def test_loaders_as_a_tuple_are_refused_naming_the_wrapper_and_the_wrapped_ones_train():
    dls = loaders()
    with pytest.raises(TypeError, match=r"dls must be a DataLoaders \(with \.train and \.valid\), not a tuple; wrap "
                                        r"the loaders: DataLoaders\(train_dl, valid_dl\)\."):
        Trainer(dls, nn.CrossEntropyLoss(), torch.optim.SGD, nn.Linear(4, 2), [BasicTrainCB()])
    with pytest.raises(TypeError, match="not a list"):
        Trainer(list(dls), nn.CrossEntropyLoss(), torch.optim.SGD, nn.Linear(4, 2), [BasicTrainCB()])
    t = Trainer(DataLoaders(*dls), nn.CrossEntropyLoss(), torch.optim.SGD, nn.Linear(4, 2), [BasicTrainCB()])
    t.fit(1, lr=0.1)  # the fix the message names
    assert t.step == len(dls[0])


def test_a_loss_class_is_refused_naming_the_instance_to_pass():
    with pytest.raises(TypeError, match=r"loss_func is the class CrossEntropyLoss; pass an instance: "
                                        r"CrossEntropyLoss\(\)\."):
        Trainer(DataLoaders(*loaders()), nn.CrossEntropyLoss, torch.optim.SGD, nn.Linear(4, 2), [BasicTrainCB()])
    # A plain function and None (the model's own loss) are losses too.
    Trainer(DataLoaders(*loaders()), nn.functional.cross_entropy, torch.optim.SGD, nn.Linear(4, 2))
    Trainer(DataLoaders(*loaders()), None, torch.optim.SGD, nn.Linear(4, 2))


@pytest.mark.parametrize("kwargs, match", [
    ({"opt_func": "adam"}, r"opt_func must be callable, like torch.optim.Adam or functools.partial\(torch.optim.SGD, "
                           r"momentum=0.9\); got str\."),
    ({"splitter": [0, 1]}, r"splitter must be a function of the model returning parameter groups, like "
                           r"body_head_splitter; got list\."),
])
def test_an_optimizer_or_splitter_that_is_not_a_function_is_refused(kwargs, match):
    args = {"opt_func": torch.optim.SGD, "splitter": None, **kwargs}
    with pytest.raises(TypeError, match=match):
        Trainer(DataLoaders(*loaders()), nn.CrossEntropyLoss(), model=nn.Linear(4, 2), **args)
    Trainer(DataLoaders(*loaders()), nn.CrossEntropyLoss(), functools.partial(torch.optim.SGD, momentum=0.9),
            nn.Linear(4, 2))  # the form the message suggests


def test_an_empty_training_loader_is_refused_before_any_event_and_validating_alone_still_works():
    # 6 rows in batches of 8 with drop_last: no batch at all, the usual way to get an empty loader.
    train, valid = loaders(n_train=6, drop_last=True)
    assert len(train) == 0
    torch.manual_seed(0)
    model, events = nn.Linear(4, 2), Events()
    before = [p.clone() for p in model.parameters()]
    t = Trainer(DataLoaders(train, valid), nn.CrossEntropyLoss(), torch.optim.SGD, model,
                [BasicTrainCB(), MetricsCB(), events])
    with pytest.raises(ValueError, match=r"The training loader is empty \(0 batches\), so the fit would only validate\. "
                                         r"Check the dataset's length, and batch_size with drop_last=True; or pass "
                                         r"train=False to validate\."):
        t.fit(1)
    assert events.seen == [] and all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    t.fit(1, train=False)  # the fix the message names: validation only
    hand = nn.functional.cross_entropy(model(valid.dataset.tensors[0]), valid.dataset.tensors[1]).item()
    assert t.epoch_log["valid"] == pytest.approx(hand, rel=1e-6)


class Stream(IterableDataset):
    def __iter__(self):
        g = torch.Generator().manual_seed(0)
        for _ in range(5): yield torch.randn(4, generator=g), torch.randint(0, 2, (), generator=g)


def test_a_loader_without_a_length_is_a_stream_not_an_empty_loader():
    stream = DataLoader(Stream(), batch_size=1)
    assert loader_length(stream) is None and loader_length(DataLoader(TensorDataset(torch.zeros(9, 1)), batch_size=4)) == 3
    t = Trainer(DataLoaders(stream, None), nn.CrossEntropyLoss(), torch.optim.SGD, nn.Linear(4, 2), [BasicTrainCB()])
    t.fit(max_steps=3, lr=0.1)
    assert t.step == 3


def test_no_callback_doing_the_step_is_refused_naming_the_phases_and_basic_train():
    torch.manual_seed(0)
    model, events = nn.Linear(4, 2), Events()  # it observes the step: watching is not doing
    before = [p.clone() for p in model.parameters()]
    t = Trainer(DataLoaders(*loaders()), nn.CrossEntropyLoss(), torch.optim.SGD, model, [MetricsCB(), events])
    with pytest.raises(CallbackSetupError, match=r"No callback does the step phases predict, get_loss, backward, step, "
                                                 r"zero_grad, so this fit would train nothing\. Add BasicTrainCB\(\) "
                                                 r"\(the plain PyTorch step; MixedPrecisionCB needs it "
                                                 r"too\), or a callback with those methods\."):
        t.fit(1)
    with pytest.raises(CallbackSetupError, match=r"step phases predict, get_loss, so this fit would compute nothing"):
        t.fit(1, train=False)  # validating needs a prediction and a loss only
    assert events.seen == [] and all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert t.cbs == [t.MetricsCB, events] and t.opt is None  # nothing was built either
    t.fit(1, lr=0.1, callbacks=[BasicTrainCB()])  # the fix the message names
    assert events.seen == ["before_fit"] + ["step"] * 4


@pytest.mark.parametrize("kwargs, match", [
    ({"max_steps": 0}, r"Trainer.fit: max_steps must be a whole number >= 1 \(optimizer steps to train\); got 0\."),
    ({"valid_every": 2.0}, r"Trainer.fit: valid_every must be a whole number >= 1 \(optimizer steps between "
                           r"validations\); got 2.0\. Pass 2 \(an int\)\."),
    ({"max_steps": True}, r"max_steps must be a whole number >= 1 .*; got True\."),
])
def test_step_counts_must_be_whole_numbers_and_say_what_they_count(kwargs, match):
    t = Trainer(DataLoaders(*loaders()), nn.CrossEntropyLoss(), torch.optim.SGD, nn.Linear(4, 2), [BasicTrainCB()])
    with pytest.raises(ValueError, match=match): t.fit(**kwargs)
    assert t.step == 0 and t.opt is None


def test_fastais_argument_order_is_refused_at_construction_naming_the_order():
    """Issue 33: Trainer(dls, model, loss_func, opt_func) was accepted, then failed deep in fit with `type object
    'Adam' has no attribute 'parameters'`."""
    dls = DataLoaders(*loaders())
    model = nn.Linear(4, 2)
    for args in [(model, nn.CrossEntropyLoss(), torch.optim.Adam),  # fastai's Learner(dls, model, loss_func, opt_func)
                 (nn.CrossEntropyLoss(), model, torch.optim.Adam),
                 (model, F.cross_entropy, torch.optim.Adam),  # with a loss function
                 (nn.CrossEntropyLoss(), torch.optim.Adam(model.parameters()), model)]:
        with pytest.raises(TypeError, match=r"Trainer\(dls, loss_func, opt_func, model"):
            Trainer(dls, *args, [BasicTrainCB()])


def test_a_model_class_is_refused_naming_the_call():
    """Issue 33: a model passed uncalled (nn.Linear, not nn.Linear(4, 2)) failed in fit with `Module.parameters()
    missing 1 required positional argument: 'self'`."""
    dls = DataLoaders(*loaders())
    class Net(nn.Module):
        def __init__(self): super().__init__(); self.lin = nn.Linear(4, 2)
        def forward(self, x): return self.lin(x)
    with pytest.raises(TypeError, match=r"model is the class Net; pass an instance: Net\(\)"):
        Trainer(dls, nn.CrossEntropyLoss(), torch.optim.SGD, Net, [BasicTrainCB()]).fit(1)


def test_a_model_class_is_refused_at_construction():
    with pytest.raises(TypeError, match=r"pass an instance: Linear\(\)"):
        Trainer(DataLoaders(*loaders()), nn.CrossEntropyLoss(), torch.optim.SGD, nn.Linear, [BasicTrainCB()])
