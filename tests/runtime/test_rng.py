import io
import random

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from AIsaac.all import get_rng_state, set_rng_state
from AIsaac.runtime.rng import loader_rng_state, set_loader_rng_state


def draws():
    return random.random(), float(np.random.randn()), torch.rand(3).tolist(), random.gauss(0, 1)


def test_state_round_trip_restores_every_generator():
    random.gauss(0, 1)  # leaves a cached gaussian in Python's state
    np.random.randn()
    state = get_rng_state()
    first = draws()
    set_rng_state(state)
    assert draws() == first


def test_state_loads_with_weights_only_and_restores_more_than_once():
    buf = io.BytesIO()
    torch.save(get_rng_state(), buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    set_rng_state(state)
    first = draws()
    set_rng_state(state)  # the state is not used up by restoring it
    assert draws() == first


class PythonRandomSampler:
    """A sampler drawing from Python's `random`, not from torch."""

    def __iter__(self): return iter(random.sample(range(20), 20))
    def __len__(self): return 20


@pytest.mark.parametrize("generator", [None, "loader", "sampler", "python"])
def test_loader_state_replays_the_shuffle(generator):
    kw = {}
    if generator == "loader": kw["generator"] = torch.Generator().manual_seed(1)
    if generator == "sampler":
        kw["sampler"] = torch.utils.data.RandomSampler(range(20), generator=torch.Generator().manual_seed(2))
    elif generator == "python": kw["sampler"] = PythonRandomSampler()
    else: kw["shuffle"] = True
    dl = DataLoader(range(20), batch_size=5, **kw)
    state = loader_rng_state(dl)
    order = [b.tolist() for b in dl]
    assert [b.tolist() for b in dl] != order  # the next epoch is shuffled differently...
    set_loader_rng_state(dl, state)
    assert [b.tolist() for b in dl] == order  # ...but restoring the state replays this one


def test_loader_built_differently_is_refused():
    state = loader_rng_state(DataLoader(range(4), shuffle=True))
    with pytest.raises(ValueError, match="draws from 1 torch.Generator"):
        set_loader_rng_state(DataLoader(range(4), shuffle=True, generator=torch.Generator()), state)
