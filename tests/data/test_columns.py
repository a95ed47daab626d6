"""AIsaac.data.columns: dict items collated into a tuple of columns, a split read whole as tensors, the batch's
columns checked, and the error for a column of sequences of different lengths (with loaders over such data in
tests/data/test_loaders.py)."""
import datasets
import numpy as np
import pytest
import torch

from AIsaac.data.columns import DictCollate, batch_columns, split_tensors


def test_dict_collate_is_picklable():
    import pickle
    c = pickle.loads(pickle.dumps(DictCollate(["b", "a"])))
    assert c([{"a": 1, "b": np.float32(2)}]) == (torch.tensor([2.0]), torch.tensor([1]))


def test_dict_collate_keeps_only_the_batch_columns_in_their_order_and_names_a_ragged_one():
    items = [{"a": torch.tensor([1.0, 2.0]), "b": i, "caption": "x" * i} for i in range(3)]
    a, b = DictCollate(["b", "a"])(items)[::-1]
    assert torch.equal(a, torch.tensor([[1.0, 2.0]] * 3)) and torch.equal(b, torch.arange(3))
    ragged = [{"ids": torch.arange(n)} for n in (1, 2, 3)]
    with pytest.raises(ValueError, match=r"Column 'ids' holds sequences of different lengths \(1, 2, 3, \.\.\.\)"):
        DictCollate(["ids"])(ragged)
    padded = DictCollate(["ids"], collate_fn=lambda items: sorted(len(it["ids"]) for it in items))
    assert padded([{"ids": [1, 2], "other": 0}, {"ids": [1], "other": 1}]) == [1, 2]


def test_split_tensors_reads_each_column_whole_and_names_a_ragged_one():
    split = datasets.Dataset.from_dict({"x": [[1.0, 2.0], [3.0, 4.0]], "y": [0, 1]}).with_format("torch")
    x, y = split_tensors(split)
    assert torch.equal(x, torch.tensor([[1.0, 2.0], [3.0, 4.0]])) and torch.equal(y, torch.tensor([0, 1]))
    (only_y,) = split_tensors(split, ["y"])
    assert torch.equal(only_y, y)
    ragged = datasets.Dataset.from_dict({"ids": [[1], [1, 2]]})
    with pytest.raises(ValueError, match="Column 'ids' holds sequences of different lengths"):
        split_tensors(ragged)


def test_batch_columns_are_inputs_then_targets_checked():
    split = datasets.Dataset.from_dict({"label": [0], "a": [1.0], "b": [2.0]})
    assert batch_columns(split, None, None) == ["label", "a", "b"]
    assert batch_columns(split, ["b", "a"], ["label"]) == ["b", "a", "label"]
    with pytest.raises(ValueError, match=r"no column \['c'\]"): batch_columns(split, ["c"], None)
    with pytest.raises(TypeError, match=r"inputs=\['a'\]"): batch_columns(split, "a", None)
    with pytest.raises(ValueError, match="named twice"): batch_columns(split, ["a"], ["a"])
