"""inplace: a function that edits its argument becomes one that returns it, as `with_transform` needs."""
import pytest
import torch

from AIsaac.all import inplace


def test_inplace_returns_the_argument_it_changed_and_keeps_the_name():
    @inplace
    def transformi(b):
        """Scale the images."""
        b["image"] = [t * 2 for t in b["image"]]

    batch = {"image": [torch.ones(2)], "label": [3]}
    out = transformi(batch)
    assert out is batch and out["label"] == [3]
    torch.testing.assert_close(out["image"][0], torch.full((2,), 2.0))
    assert (transformi.__name__, transformi.__doc__) == ("transformi", "Scale the images.")


def test_inplace_with_a_hugging_face_dataset_transform():
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_dict({"x": [[1.0, 2.0], [3.0, 4.0]]})

    @inplace
    def double(b): b["x"] = [[2 * v for v in row] for row in b["x"]]
    assert ds.with_transform(double)[:]["x"] == [[2.0, 4.0], [6.0, 8.0]]
