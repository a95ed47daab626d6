"""Per-batch worker seeds: a batch draws the same whichever worker loads it and whatever that worker loaded before;
each pass has its own seed, read without drawing; a user's plain DataLoader is rebuilt once."""
import random

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from AIsaac.runtime.loader_seeding import (SeededBatches, SeededDataLoader, SeededIndices, batch_seed, pass_seed,
                                           seeded_loader)


class Noisy(Dataset):
    """Items that draw from the three generators a transform may use, in the process that loads them."""

    def __init__(self, n=16): self.n = n
    def __len__(self): return self.n
    def __getitem__(self, i): return torch.tensor([float(i), random.random(), np.random.rand(), torch.rand(()).item()])


def passes(dl, n=3):
    torch.manual_seed(0), random.seed(0), np.random.seed(0)
    return [torch.cat(list(dl)) for _ in range(n)], torch.get_rng_state()


def test_a_batch_draws_the_same_whichever_worker_loads_it():
    one, _ = passes(SeededDataLoader(Noisy(), batch_size=4, shuffle=True, num_workers=1))
    two, _ = passes(SeededDataLoader(Noisy(), batch_size=4, shuffle=True, num_workers=2))
    assert all(torch.equal(a, b) for a, b in zip(one, two))
    assert not torch.equal(one[0][:, 1:], one[1][:, 1:])  # each pass draws anew


def test_persistent_workers_shuffle_and_draw_as_fresh_ones():
    fresh, fresh_rng = passes(SeededDataLoader(Noisy(), batch_size=4, shuffle=True, num_workers=2))
    reused, reused_rng = passes(SeededDataLoader(Noisy(), batch_size=4, shuffle=True, num_workers=2,
                                                 persistent_workers=True))
    assert all(torch.equal(a, b) for a, b in zip(fresh, reused)) and torch.equal(fresh_rng, reused_rng)


def test_the_pass_seed_is_read_without_drawing_and_each_batch_has_its_own():
    g = torch.Generator().manual_seed(1)
    before, g_before = torch.get_rng_state(), g.get_state()
    seed = pass_seed([g])
    assert torch.equal(torch.get_rng_state(), before) and torch.equal(g.get_state(), g_before)
    assert pass_seed([g]) == seed and pass_seed() != seed
    g.manual_seed(2)
    assert pass_seed([g]) != seed
    assert len({batch_seed(seed, i) for i in range(100)}) == 100 and all(0 <= batch_seed(seed, i) < 2**63
                                                                          for i in range(100))
    tagged = list(SeededBatches([[0, 1], [2, 3]]))
    assert tagged == [[0, 1], [2, 3]] and all(isinstance(b, SeededIndices) for b in tagged)
    assert [b.batch for b in tagged] == [0, 1] and tagged[0].seed == tagged[1].seed


def test_without_workers_nothing_is_tagged_and_draws_are_a_plain_dataloaders():
    plain, plain_rng = passes(DataLoader(Noisy(), batch_size=4, shuffle=True))
    seeded, seeded_rng = passes(SeededDataLoader(Noisy(), batch_size=4, shuffle=True))
    assert all(torch.equal(a, b) for a, b in zip(plain, seeded)) and torch.equal(plain_rng, seeded_rng)


def test_a_plain_dataloader_with_workers_is_rebuilt_once_with_its_arguments():
    g = torch.Generator()
    dl = DataLoader(Noisy(), batch_size=4, shuffle=True, num_workers=2, generator=g, drop_last=True)
    seeded = seeded_loader(dl)
    assert isinstance(seeded, SeededDataLoader) and seeded_loader(dl) is seeded
    assert seeded.batch_sampler is dl.batch_sampler and seeded.generator is g and seeded.num_workers == 2
    assert len(seeded) == len(dl) == 4
    no_workers = DataLoader(Noisy(), batch_size=4)
    assert seeded_loader(no_workers) is no_workers

    class Mine(DataLoader): pass

    mine = Mine(Noisy(), batch_size=4, num_workers=2)
    assert seeded_loader(mine) is mine  # a subclass may do more than its arguments say: left as it is
