"""DatasetLoader: persistent workers that shuffle, seed and draw as fresh ones (a `SeededDataLoader` without persistent
workers: both seed their workers per batch); loading_plan."""
import logging
import random

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset, get_worker_info

from AIsaac.data import dataset_loader, loaders
from AIsaac.data.dataset_loader import DatasetLoader, loading_plan
from AIsaac.runtime.loader_seeding import SeededDataLoader


class Noisy(Dataset):
    """Items that draw from the three RNGs a transform may use (in the worker that loads them)."""

    def __init__(self, n=24): self.n = n
    def __len__(self): return self.n

    def __getitem__(self, i):
        return torch.tensor([float(i), random.random(), np.random.rand(), torch.rand(()).item()])


def passes(dl, n=3):
    """The batches of `n` passes over `dl`, and torch's global RNG state after them."""
    torch.manual_seed(0), random.seed(0), np.random.seed(0)
    out = [torch.cat(list(dl)) for _ in range(n)]
    return out, torch.get_rng_state()


@pytest.mark.parametrize("num_workers", [1, 2])
def test_reused_workers_give_the_batches_of_fresh_ones(num_workers):
    fresh, fresh_rng = passes(SeededDataLoader(Noisy(), batch_size=4, shuffle=True, num_workers=num_workers))
    dl = DatasetLoader(Noisy(), batch_size=4, shuffle=True, num_workers=num_workers)
    reused, reused_rng = passes(dl)
    assert dl.persistent_workers and dl._iterator is not None  # the same workers served every pass
    assert all(torch.equal(a, b) for a, b in zip(fresh, reused))  # same order, same random draws in the workers
    assert not torch.equal(reused[0], reused[1]) and torch.equal(fresh_rng, reused_rng)


class Inited(Noisy):
    """Items that also show what `worker_init_fn` set in their worker (from the worker's seed)."""
    base = -1.0

    def __getitem__(self, i): return torch.cat([super().__getitem__(i), torch.tensor([self.base])])


def init(worker_id):
    info = get_worker_info()
    info.dataset.base = float(info.seed % 1000)


def test_worker_init_fn_runs_again_each_pass():
    kw = dict(batch_size=4, shuffle=False, num_workers=1, worker_init_fn=init)
    fresh, _ = passes(SeededDataLoader(Inited(8), **kw))
    reused, _ = passes(DatasetLoader(Inited(8), **kw))
    assert all(torch.equal(a, b) for a, b in zip(fresh, reused))
    assert reused[0][0, 4] != reused[1][0, 4] and reused[0][0, 4] >= 0  # init ran again, with the new pass's seed


def test_a_pass_left_early_and_a_new_one_begun():
    """`next(iter(dl))` (a look at one batch) then full passes, as show_batch and fit do."""
    def run(dl):
        torch.manual_seed(0)
        first = next(iter(dl))
        return first, torch.cat(list(dl)), torch.cat(list(dl))
    fresh = run(SeededDataLoader(Noisy(), batch_size=4, shuffle=True, num_workers=1))
    reused = run(DatasetLoader(Noisy(), batch_size=4, shuffle=True, num_workers=1))
    assert all(torch.equal(a, b) for a, b in zip(fresh, reused))


def test_main_threads_during_a_pass_only():
    before = torch.get_num_threads()
    seen = []
    dl = DatasetLoader(Noisy(8), batch_size=4, num_workers=1, main_threads=1)
    for _ in dl: seen.append(torch.get_num_threads())
    assert seen == [1, 1] and torch.get_num_threads() == before
    it = iter(dl)
    next(it)
    del it  # a pass dropped half way gives the threads back too
    assert torch.get_num_threads() == before


def test_without_workers_it_is_a_plain_dataloader():
    fresh, fresh_rng = passes(DataLoader(Noisy(), batch_size=4, shuffle=True))
    same, same_rng = passes(DatasetLoader(Noisy(), batch_size=4, shuffle=True, main_threads=1))
    assert all(torch.equal(a, b) for a, b in zip(fresh, same)) and torch.equal(fresh_rng, same_rng)


@pytest.mark.parametrize("asked, cores, plan", [(4, 2, (1, 1)), (4, 1, (0, None)), (4, 8, (4, 4)), (2, 16, (2, 14)),
                                                (0, 8, (0, None))])
def test_loading_plan(asked, cores, plan):
    assert loading_plan(asked, cores) == plan


def test_usable_cores_shared_by_a_local_launch(monkeypatch):
    monkeypatch.setattr(dataset_loader.os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert dataset_loader.usable_cores() == 2


def test_from_dataset_dict_says_what_it_chose(monkeypatch, caplog):
    import datasets
    dd = datasets.DatasetDict({s: datasets.Dataset.from_dict({"x": [[1.0]] * 8, "y": [0] * 8}) for s in ("train", "test")})
    monkeypatch.setattr(loaders, "usable_cores", lambda: 2)
    with caplog.at_level(logging.INFO, logger="AIsaac"):
        dls = loaders.DataLoaders.from_dataset_dict(dd.with_format("torch"), 4, num_workers=4)
    assert dls.train.num_workers == 1 and dls.valid.num_workers == 1 and dls.train.persistent_workers
    assert dls.train.main_threads == 1 and "num_workers=4 asked" in caplog.text and "2 CPU cores" in caplog.text
    monkeypatch.setattr(loaders, "usable_cores", lambda: 1)
    dls = loaders.DataLoaders.from_dataset_dict(dd.with_format("torch"), 4, num_workers=4, persistent_workers=True)
    assert dls.train.num_workers == 0 and dls.train.main_threads is None
    x, y = next(iter(dls.train))
    assert x.shape == (4, 1)


def resume_trainer(dls=None, seed=0):
    from torch import nn
    from AIsaac.all import BasicTrainCB, DataLoaders, MetricsCB, Trainer, set_seed
    from tests.helpers.resume_run import NoisyData
    set_seed(seed)
    if dls is None:
        dls = DataLoaders(DatasetLoader(NoisyData(24), batch_size=4, shuffle=True, num_workers=1),
                          DatasetLoader(NoisyData(8), batch_size=4, num_workers=1))
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Dropout(0.3), nn.Linear(8, 3))
    return Trainer(dls, nn.CrossEntropyLoss(), torch.optim.Adam, model, [BasicTrainCB(), MetricsCB()])


@pytest.mark.parametrize("same_loaders", [False, True])
def test_exact_resume_in_a_later_pass_of_persistent_workers(tmp_path, same_loaders):
    """Interrupted in the second epoch (the workers' second pass), resumed with new workers or with the same ones."""
    from AIsaac.all import Callback, CheckpointCB
    class StopAt(Callback):
        def after_batch(self, trainer):
            if trainer.training and (trainer.epoch, trainer.batch_num) == (1, 4): raise KeyboardInterrupt
    reference = resume_trainer()
    reference.fit(2, lr=1e-2)
    trainer = resume_trainer()
    with pytest.raises(KeyboardInterrupt):
        trainer.fit(2, lr=1e-2, callbacks=[CheckpointCB(tmp_path, every_n_batches=3), StopAt()])
    resumed = resume_trainer(trainer.dls if same_loaders else None, seed=5)
    resumed.fit(2, lr=1e-2, resume_from=tmp_path)
    for a, b in zip(resumed.model.state_dict().values(), reference.model.state_dict().values()): assert torch.equal(a, b)
