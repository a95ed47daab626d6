"""set_seed makes Python, NumPy and torch repeat themselves."""
import random

import numpy as np
import torch

from AIsaac.all import set_seed


def draw(): return random.random(), float(np.random.rand()), torch.rand(1).item()


def test_same_seed_same_numbers():
    set_seed(3); a = draw()
    set_seed(3); b = draw()
    set_seed(4); c = draw()
    assert a == b and a != c


def test_deterministic_flag_is_switched_on_and_off():
    try:
        set_seed(0, deterministic=True)
        assert torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.deterministic
    finally:
        set_seed(0)
    assert not torch.are_deterministic_algorithms_enabled()
