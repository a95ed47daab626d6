"""Elastic resume's index arithmetic against Accelerate's own sharding: the samples N processes consumed (each
process's first k batches of its BatchSamplerShard) plus the rest dealt out to M processes are the epoch, each once,
the rest in the epoch's order; the epoch's order recomputed from the loader RNG state is the loader's own."""
import pytest
import torch
from torch.utils.data import DataLoader

from AIsaac.runtime.elastic import deal, epoch_batches, remaining, segments, unsupported
from AIsaac.runtime.rng import loader_rng_state

BatchSamplerShard = pytest.importorskip("accelerate.data_loader").BatchSamplerShard

N_SAMPLES, BS = 42, 4  # 11 global batches, the last one short


def loader(generator=None):
    return DataLoader(list(range(N_SAMPLES)), batch_size=BS, shuffle=True, generator=generator)


def consumed_by_accelerate(dl, state, n, k):
    """What n processes trained on after k batches each: each process's loader over its Accelerate shard, from the
    epoch's loader RNG state (as Accelerate synchronises it), first k batches."""
    out = []
    for p in range(n):
        dl.generator.set_state(state["generators"][0])
        shard = BatchSamplerShard(dl.batch_sampler, num_processes=n, process_index=p)
        for t, b in enumerate(DataLoader(dl.dataset, batch_sampler=shard, generator=dl.generator)):
            if t == k: break
            out += b.tolist()
    return out


@pytest.mark.parametrize("n,m", [(2, 1), (1, 2), (2, 3)])
@pytest.mark.parametrize("k", [1, 2, 4])
def test_consumed_plus_dealt_is_the_epoch_each_once(n, m, k):
    g = torch.Generator().manual_seed(7)
    dl = loader(g)
    state = loader_rng_state(dl)
    order = [int(i) for i in torch.cat([b for b in dl])]  # the epoch as the loader gives it
    consumed = consumed_by_accelerate(dl, state, n, k)
    batches = epoch_batches(dl, state)
    assert [i for b in batches for i in b] == order
    rest = remaining(batches, segments([[n, k]]), BS)
    assert rest == [i for i in order if i not in set(consumed)]  # the epoch's order kept
    dealt = deal(rest, m, BS)
    seen = [i for p in dealt for b in p for i in b]
    assert sorted(consumed + seen) == list(range(N_SAMPLES))  # every sample once
    assert len({len(p) for p in dealt}) == 1  # every process runs as many batches
    assert len(seen) == len(rest)  # none repeated
    assert all(len(b) <= BS for p in dealt for b in p)


def test_a_second_elastic_resume_continues_the_dealing():
    dl = loader(torch.Generator().manual_seed(3))
    state = loader_rng_state(dl)
    batches = epoch_batches(dl, state)
    first = remaining(batches, segments([[2, 1]]), BS)  # 2 processes, 1 batch each; then on 3 processes...
    on3 = deal(first, 3, BS)
    then = [i for t in range(2) for p in on3 for i in p[t]]  # ... two batches each
    rest = remaining(batches, segments([[2, 1], [3, 3]]), BS)
    assert rest == [i for i in first if i not in set(then)]
    assert sorted(batches[0] + batches[1] + then + rest) == list(range(N_SAMPLES))


def test_the_order_without_a_generator_comes_from_the_global_rng():
    dl = loader()
    state = loader_rng_state(dl)
    order = [int(i) for i in torch.cat(list(dl))]
    torch.manual_seed(123)  # elsewhere now: the recompute puts the saved state back first
    assert [i for b in epoch_batches(dl, state) for i in b] == order


def test_the_last_round_is_split_evenly_and_padded_only_below_one_sample_each():
    assert deal(list(range(10)), 2, 4) == [[[0, 1, 2, 3], [8]], [[4, 5, 6, 7], [9]]]
    assert deal(list(range(7)), 3, 4) == [[[0, 1, 2]], [[3, 4]], [[5, 6]]]
    assert [len(b) for p in deal(list(range(26)), 3, 4) for b in p] == [4, 3, 2, 4, 3, 2, 4, 2, 2]  # none padded
    with pytest.warns(RuntimeWarning, match="1 process\\(es\\) repeat"):
        assert deal([5, 6], 3, 4) == [[[5]], [[6]], [[5]]]


def test_a_stream_is_named_as_the_case_not_supported():
    class Stream(torch.utils.data.IterableDataset):
        def __iter__(self): return iter(range(4))
    assert "IterableDataset" in unsupported(DataLoader(Stream(), batch_size=2), 1)
    assert "did not prepare" in unsupported(loader(), 2)
    assert unsupported(loader(), 1) is None


def test_a_generator_given_since_the_save_is_set_aside_for_the_recompute():
    dl = loader()  # saved by one process: no generator, the order from the global RNG
    state = loader_rng_state(dl)
    order = [int(i) for i in torch.cat(list(dl))]
    given = dl.batch_sampler.sampler.generator = torch.Generator().manual_seed(1)  # as Accelerate gives one
    assert [i for b in epoch_batches(dl, state) for i in b] == order
    assert dl.batch_sampler.sampler.generator is given
