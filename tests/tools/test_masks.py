"""mask2idxs: the positions of a mask's True entries, for lists, arrays and tensors, as the original's notebooks
use it."""
import numpy as np
import pytest
import torch

from AIsaac.all import mask2idxs


def test_mask2idxs_on_lists_arrays_and_tensors():
    mask = [True, False, True, False, True]
    assert mask2idxs(mask) == [0, 2, 4]
    assert mask2idxs([not m for m in mask]) == [1, 3]
    assert mask2idxs(torch.tensor(mask)) == [0, 2, 4] and mask2idxs(~torch.tensor(mask)) == [1, 3]
    assert mask2idxs(np.array(mask)) == [0, 2, 4]
    assert mask2idxs(torch.tensor([0.5, 1.0, 2.0])) == [1]  # `== True`, as the original: only 1 counts
    assert mask2idxs([]) == []
    with pytest.raises(ValueError, match="1-D"): mask2idxs(torch.ones(2, 2, dtype=torch.bool))
    with pytest.raises(TypeError, match="sequence of booleans"): mask2idxs(3)


def test_mask2idxs_is_nonzero_of_a_random_mask():
    mask = torch.rand(200, generator=torch.Generator().manual_seed(0)) > 0.5
    assert mask2idxs(mask) == mask.nonzero().flatten().tolist() == mask2idxs(mask.numpy()) == mask2idxs(mask.tolist())
