"""`class_names` and `label_titles` (AIsaac/data/labels.py): a loader's label names, and labels as image titles."""
import datasets
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from AIsaac.all import DataLoaders, inplace
from AIsaac.data.labels import class_names, label_titles
from AIsaac.data.columns import DictCollate

COARSE, FINE = ["animal", "vehicle"], ["cat", "dog", "car"]


def hf_split(n=6):
    feats = datasets.Features({"coarse": datasets.ClassLabel(names=COARSE), "image": datasets.Array2D((2, 2), "float32"),
                               "fine": datasets.ClassLabel(names=FINE)})
    return datasets.Dataset.from_dict({"coarse": [i % 2 for i in range(n)], "image": torch.rand(n, 2, 2).tolist(),
                                       "fine": [i % 3 for i in range(n)]}, features=feats)


def test_class_names_of_a_hugging_face_loader_come_from_its_label_feature():
    @inplace
    def to_tensor(b): b["image"] = [torch.tensor(o) for o in b["image"]]

    dd = datasets.DatasetDict({"train": hf_split(), "test": hf_split()}).with_transform(to_tensor)
    ds = dd["train"]
    # A collate that does not name its positions: the names of the first ClassLabel feature there is.
    assert class_names(DataLoader(ds, batch_size=3)) == COARSE
    # One that does (DictCollate, as from_dataset_dict builds it) puts the label at position 1: its names.
    assert class_names(DataLoader(ds, batch_size=3, collate_fn=DictCollate(["image", "fine"]))) == FINE
    assert class_names(DataLoader(ds, batch_size=3, collate_fn=DictCollate(["image", "coarse"]))) == COARSE
    dls = DataLoaders.from_dataset_dict(dd, 3, inputs=["image"], targets=["fine"])
    assert class_names(dls.train) == class_names(dls.valid) == FINE
    # All features in their declared order would give the model the labels ('coarse') as input: refused (issue 33).
    with pytest.raises(ValueError, match=r"inputs=\['image'\], targets=\['coarse', 'fine'\]"):
        DataLoaders.from_dataset_dict(dd, 3)


def test_class_names_is_none_without_label_names():
    x, y = torch.rand(4, 2), torch.tensor([0, 1, 0, 1])
    assert class_names(DataLoader(TensorDataset(x, y), batch_size=2)) is None  # no features at all
    numbers = datasets.Dataset.from_dict({"x": [1.0, 2.0], "y": [0, 1]})  # features, but none with names
    assert class_names(DataLoader(numbers, batch_size=2)) is None
    assert class_names(object()) is None


def test_label_titles_are_class_names_when_known_else_the_numbers():
    labels = torch.tensor([2, 0, 1, 2])
    assert label_titles(labels, FINE, 3) == ["car", "cat", "dog"]
    assert label_titles(labels, None, 9) == ["2", "0", "1", "2"]  # n beyond the batch: the labels there are
    assert label_titles([1, 0], COARSE, 2) == ["vehicle", "animal"]  # a list works too
    assert label_titles(torch.tensor([0, 3]), FINE, 2) == ["0", "3"]  # 3 has no name: numbers, not a wrong name
    assert label_titles(torch.tensor([0.5, 2.0]), FINE, 2) == ["0.5", "2"]  # regression targets are not classes


def test_label_titles_are_none_for_no_labels_or_labels_that_are_not_one_number_each():
    assert label_titles(None, FINE, 4) is None
    assert label_titles(torch.eye(3), FINE, 3) is None  # one-hot (or soft) labels
    assert label_titles(torch.zeros(2, 4, 4, dtype=torch.long), None, 2) is None  # segmentation masks
