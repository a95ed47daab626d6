from functools import partial

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from AIsaac.all import DataLoaders, Predictions, Trainer


def make():
    torch.manual_seed(0)
    x, y = torch.randn(10, 4), torch.randint(0, 3, (10,))
    train = DataLoader(TensorDataset(x[:6], y[:6]), batch_size=4)
    valid = DataLoader(TensorDataset(x[6:], y[6:]), batch_size=3)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Dropout(0.5), nn.Linear(8, 3))
    return Trainer(DataLoaders(train, valid), nn.CrossEntropyLoss(), torch.optim.SGD, model), x, y


def test_get_preds_matches_plain_eval_forward():
    trainer, x, y = make()
    preds, targets = trainer.get_preds()
    trainer.model.eval()
    with torch.no_grad(): expected = trainer.model(x[6:])
    trainer.model.train()
    torch.testing.assert_close(preds, expected)
    assert torch.equal(targets, y[6:]) and not preds.requires_grad
    assert trainer.model.training  # mode restored


def test_get_preds_returns_a_named_pair_that_unpacks_as_before():
    trainer, _, y = make()
    found = trainer.get_preds()
    assert isinstance(found, Predictions) and isinstance(found, tuple) and len(found) == 2
    preds, targets = found
    assert found.preds is preds and found.targets is targets and torch.equal(targets, y[6:])
    assert found[0] is preds and found == (preds, targets)
    assert trainer.get_preds(with_targets=False).targets is None  # a pair too (issue 33)


def test_get_preds_other_loader_act_and_tta():
    trainer, x, y = make()
    trainer.model.eval()
    preds, _ = trainer.get_preds(trainer.dls.train, with_targets=False, act=partial(torch.softmax, dim=-1),
                                 tta=[lambda b: b, lambda b: -b])
    with torch.no_grad():
        m = trainer.model
        expected = (torch.softmax(m(x[:6]), -1) + torch.softmax(m(-x[:6]), -1)) / 2
    torch.testing.assert_close(preds, expected)
    assert not trainer.model.training


def test_predict_and_inputs_only_loader():
    trainer, x, _ = make()
    out = trainer.predict(x[:2])
    trainer.model.eval()
    with torch.no_grad(): torch.testing.assert_close(out, trainer.model(x[:2]))
    inputs_only = DataLoader(x, batch_size=5)  # each batch is a tensor, not a tuple
    torch.testing.assert_close(trainer.get_preds(inputs_only, with_targets=False).preds, trainer.predict(x))
    with pytest.raises(ValueError, match="with_targets=False"): trainer.get_preds(inputs_only)


def test_get_preds_decode_gives_class_names_where_the_data_has_them():
    import datasets
    feats = datasets.Features({"x": datasets.Sequence(datasets.Value("float32"), length=4),
                               "label": datasets.ClassLabel(names=["cat", "dog", "eel"])})
    torch.manual_seed(0)
    rows = {"x": torch.randn(9, 4).tolist(), "label": [0, 1, 2] * 3}
    dd = datasets.DatasetDict({"train": datasets.Dataset.from_dict(rows, features=feats),
                               "test": datasets.Dataset.from_dict(rows, features=feats)}).with_format("torch")
    dls = DataLoaders.from_dataset_dict(dd, 4)
    model = nn.Linear(4, 3)
    trainer = Trainer(dls, nn.CrossEntropyLoss(), torch.optim.SGD, model)
    names, targets = trainer.get_preds(decode=True)
    with torch.no_grad(): idx = model(torch.tensor(rows["x"])).argmax(1)
    assert names == [["cat", "dog", "eel"][i] for i in idx] and targets.tolist() == rows["label"]
    unlabelled = datasets.Dataset.from_dict({"x": rows["x"]}).with_format("torch")
    assert trainer.get_preds(dls.test_dl(unlabelled), decode=True) == (names, None)  # names from training


def test_get_preds_decode_without_class_names_gives_indices():
    trainer, x, y = make()
    idx, _ = trainer.get_preds(decode=True, with_targets=False)
    torch.testing.assert_close(idx, trainer.get_preds(with_targets=False).preds.argmax(1))


def test_get_preds_without_targets_is_a_pair_with_no_targets():
    """Issue 33: with_targets=False gave a bare tensor where every other call gives a Predictions pair."""
    trainer, x, _ = make()
    found = trainer.get_preds(with_targets=False)
    assert isinstance(found, Predictions) and found.targets is None
    preds, targets = found  # unpacks as every other call does
    trainer.model.eval()
    with torch.no_grad(): torch.testing.assert_close(preds, trainer.model(x[6:]))
    assert targets is None
    out = trainer.predict(x[:2])  # predict stays the output alone
    assert isinstance(out, torch.Tensor) and out.shape == (2, 3)


@pytest.mark.parametrize("kind", ["tensors", "DataLoader"])
def test_get_preds_on_an_unlabelled_test_dl_needs_no_with_targets(kind):
    """Issue 33: get_preds(dls.test_dl(unlabelled)) asked for with_targets=False: a loader made by test_dl knows its
    batches may have no targets."""
    trainer, x, y = make()
    if kind == "tensors": trainer.dls = DataLoaders.from_tensors((x[:6], y[:6]), (x[6:], y[6:]), batch_size=4)
    preds, targets = trainer.get_preds(trainer.dls.test_dl(x))
    assert preds.shape == (10, 3) and targets is None
    preds, targets = trainer.get_preds(trainer.dls.test_dl((x, y)))  # labelled new data keeps its targets
    assert torch.equal(targets, y)
    with pytest.raises(ValueError, match="no targets"):  # asked for explicitly, they are still required
        trainer.get_preds(trainer.dls.test_dl(x), with_targets=True)
