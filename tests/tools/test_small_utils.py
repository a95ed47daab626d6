"""mask2idxs, retrieve_global_name and PPDict, as the original's notebooks use them."""
from datetime import timedelta

import numpy as np
import pytest
import torch

from AIsaac.all import PPDict, mask2idxs, retrieve_global_name


def test_mask2idxs():
    mask = [True, False, True, False, True]
    assert mask2idxs(mask) == [0, 2, 4]
    assert mask2idxs([not m for m in mask]) == [1, 3]
    assert mask2idxs(torch.tensor(mask)) == [0, 2, 4] and mask2idxs(~torch.tensor(mask)) == [1, 3]
    assert mask2idxs(np.array(mask)) == [0, 2, 4]
    assert mask2idxs(torch.tensor([0.5, 1.0, 2.0])) == [1]  # `== True`, as the original: only 1 counts
    assert mask2idxs([]) == []
    with pytest.raises(ValueError, match="1-D"): mask2idxs(torch.ones(2, 2, dtype=torch.bool))
    with pytest.raises(TypeError, match="sequence of booleans"): mask2idxs(3)


def name_of(x): return retrieve_global_name(x)


def test_retrieve_global_name_gives_the_callers_names():
    trainer = object()
    alias = trainer
    other = object()  # noqa: F841
    assert sorted(name_of(trainer)) == ["alias", "trainer"]
    assert retrieve_global_name(other, frames_up=1) == ["other"]
    unnamed = name_of(object())  # outside an assert: pytest names the assert's own values
    assert unnamed == []
    with pytest.raises(ValueError, match="frames_up"): retrieve_global_name(trainer, 0)


def test_ppdict_prints_short_numbers_and_keeps_values():
    d = PPDict(loss=0.123456789, epoch=3, time=timedelta(seconds=61.2), name="train")
    assert str(d) == "{'loss': 0.1235, 'epoch': 3, 'time': '0:01:02', 'name': 'train'}"
    assert d["loss"] == 0.123456789 and isinstance(d, dict)
