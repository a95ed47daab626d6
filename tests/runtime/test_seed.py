"""set_seed makes Python, NumPy and torch repeat themselves, and never weakens what a user set."""
import random

import numpy as np
import pytest
import torch

from AIsaac.all import set_seed


def draw(): return random.random(), float(np.random.rand()), torch.rand(1).item()


@pytest.fixture
def torch_flags():
    """Put torch's determinism flags back as they were, whatever the test set."""
    saved = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    yield
    torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[2], saved[3]


def flags():
    return (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
            torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)


def test_same_seed_same_numbers():
    set_seed(3); a = draw()
    set_seed(3); b = draw()
    set_seed(4); c = draw()
    assert a == b and a != c


def test_deterministic_switches_everything_on(torch_flags):
    torch.use_deterministic_algorithms(False)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = False, True
    set_seed(0, deterministic=True)
    assert flags() == (True, False, True, False)


@pytest.mark.parametrize("warn_only", [False, True])
def test_a_plain_seed_keeps_what_the_user_switched_on(torch_flags, warn_only):
    torch.use_deterministic_algorithms(True, warn_only=warn_only)
    torch.backends.cudnn.deterministic = True
    set_seed(1)
    assert flags()[:3] == (True, warn_only, True)
    set_seed(1, deterministic=True)  # adding determinism keeps the user's warn_only choice
    assert flags()[:3] == (True, warn_only, True)


def test_a_plain_seed_keeps_cudnn_autotuning_and_nondeterminism(torch_flags):
    torch.use_deterministic_algorithms(False)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = False, True
    set_seed(2)
    assert flags() == (False, False, False, True)
