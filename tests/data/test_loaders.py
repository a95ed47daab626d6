import pytest
from datasets import Dataset, DatasetDict

from AIsaac.all import DataLoaders


def split(n=6):
    columns = {"x": [[float(i)] * 2 for i in range(n)], "y": [i % 2 for i in range(n)]}
    return Dataset.from_dict(columns).with_format("torch")


def test_dataset_dict_without_a_train_split():
    with pytest.raises(ValueError, match=r"no 'train' split \(its splits: \['training', 'test'\]\); rename .*"
                                         r"dd\['train'\] = dd.pop\('training'\)"):
        DataLoaders.from_dataset_dict(DatasetDict(training=split(), test=split()), 2)


def test_dataset_dict_without_a_validation_or_test_split():
    with pytest.raises(ValueError, match=r"no validation split \(looked for validation, valid, test; its splits: "
                                         r"\['train'\]\); make one, e.g. .*train_test_split"):
        DataLoaders.from_dataset_dict(DatasetDict(train=split()), 2)


@pytest.mark.parametrize("name", ["validation", "valid", "test"])
def test_any_validation_split_name_is_used(name):
    dls = DataLoaders.from_dataset_dict(DatasetDict(train=split(6), **{name: split(4)}), 2)
    x, y = next(iter(dls.valid))
    assert x.shape == (4, 2) and y.tolist() == [0, 1, 0, 1]  # twice the batch size, in order
    assert len(dls.train) == 3
