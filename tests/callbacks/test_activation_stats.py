"""ActivationStatsCB: statistics equal a hand computation, hooks never outlive the fit, plots draw."""
import matplotlib
import pytest
import torch
from torch import nn

from AIsaac.all import ActivationStatsCB, BasicTrainCB, CallbackError, DataLoaders, TensorLoader, Trainer


def model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))


def test_stats_match_hand_computation_for_training_batches_only(tiny_dls):
    m, initial = model(), model()  # same seed: `initial` keeps the weights the first batch saw
    cb = ActivationStatsCB(lambda mod: isinstance(mod, nn.ReLU))
    Trainer(tiny_dls, nn.CrossEntropyLoss(), torch.optim.SGD, m, callbacks=[BasicTrainCB(), cb]).fit(1)
    assert cb.names == ["1 ReLU"] and cb.stats[0].shape == (6, 42)  # 6 training batches, mean+std+40 bins
    acts = initial[:2](tiny_dls.train.dataset.tensors[0][:16])
    torch.testing.assert_close(cb.stats[0][0, :2], torch.stack([acts.mean(), acts.std()]))
    torch.testing.assert_close(cb.stats[0][0, 2:], torch.histc(acts.abs(), 40, 0, 10))


def test_every_batch_record_equals_the_statistics_by_hand():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(24, 4, generator=g), torch.randint(0, 3, (24,), generator=g)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))
    t = Trainer(DataLoaders(TensorLoader(x, y, batch_size=8), TensorLoader(x, y, batch_size=8)), nn.CrossEntropyLoss(),
                torch.optim.SGD, model, [BasicTrainCB(), ActivationStatsCB(lambda m: isinstance(m, nn.Linear), bins=5)])
    t.fit(1, lr=1e-9)  # the weights barely move, so the final model reproduces every batch's activations
    with torch.no_grad():
        for b, xb in enumerate(x.split(8)):
            acts = model[0](xb)
            want = torch.cat([torch.stack([acts.mean(), acts.std()]), torch.histc(acts.abs(), 5, 0.0, 10.0)])
            torch.testing.assert_close(t.ActivationStatsCB.stats[0][b], want, atol=1e-5, rtol=1e-4)
    assert [len(s) for s in t.ActivationStatsCB.stats] == [3, 3]


def test_default_filter_hooks_every_module(tiny_dls):
    cb = ActivationStatsCB()
    Trainer(tiny_dls, nn.CrossEntropyLoss(), torch.optim.SGD, model(), callbacks=[BasicTrainCB(), cb]).fit(1)
    assert cb.names == ["Sequential", "0 Linear", "1 ReLU", "2 Linear"]


def test_hooks_removed_after_fit_and_after_failure(tiny_dls):
    m = model()

    class Boom:
        def after_batch(self, trainer): raise RuntimeError("x")
    cb = ActivationStatsCB()
    tr = Trainer(tiny_dls, nn.CrossEntropyLoss(), torch.optim.SGD, m, callbacks=[BasicTrainCB(), cb])
    tr.fit(1)
    assert all(not mod._forward_hooks for mod in m.modules())
    with pytest.raises(CallbackError):
        tr.fit(1, callbacks=[Boom()])
    assert all(not mod._forward_hooks for mod in m.modules())


def test_records_stay_bounded_over_long_fits(tiny_dls):
    cb = ActivationStatsCB(lambda mod: isinstance(mod, nn.ReLU), max_records=8)
    Trainer(tiny_dls, nn.CrossEntropyLoss(), torch.optim.SGD, model(), callbacks=[BasicTrainCB(), cb]).fit(10)
    assert 4 <= len(cb.stats[0]) <= 8  # 60 batches, subsampled evenly


def test_plots_draw_one_panel_per_module(tiny_dls, tmp_path):
    matplotlib.use("Agg")
    cb = ActivationStatsCB(lambda mod: isinstance(mod, (nn.ReLU, nn.Linear)))
    Trainer(tiny_dls, nn.CrossEntropyLoss(), torch.optim.SGD, model(), callbacks=[BasicTrainCB(), cb]).fit(1)
    fig = cb.color_dim()
    assert sum(ax.get_visible() and len(ax.images) == 1 for ax in fig.axes) == 3
    fig.savefig(tmp_path / "cd.png")
    fig = cb.dead_chart()
    assert sum(len(ax.lines) == 1 for ax in fig.axes if ax.get_visible()) == 3
    fig = cb.plot_stats()
    assert [len(ax.lines) for ax in fig.axes] == [3, 3]
    fig.savefig(tmp_path / "stats.png")
    assert (tmp_path / "cd.png").stat().st_size > 1000


def test_built_on_hooks_callback_and_readable_the_original_way(tiny_dls):
    from AIsaac.all import HooksCallback, get_hist, get_min
    cb = ActivationStatsCB(lambda mod: isinstance(mod, nn.Linear))
    Trainer(tiny_dls, nn.CrossEntropyLoss(), torch.optim.SGD, model(), callbacks=[BasicTrainCB(), cb]).fit(2)
    assert isinstance(cb, HooksCallback) and len(cb) == 2
    for h, s in zip(cb, cb.stats):  # `for h in cb: get_hist(h)`, as the original's color_dim reads them
        assert h.removed and len(s) == 12
        torch.testing.assert_close(h.stats[0], s[:, 0])
        torch.testing.assert_close(get_hist(h), s[:, 2:].T.log1p())
        torch.testing.assert_close(get_min(h), s[:, 2] / s[:, 2:].sum(1).clamp(min=1))


def test_a_loader_without_a_length_records_the_same_as_one_with_it():
    """Rows are allocated once per fit from the loader's length; a stream (no length) keeps its records another way,
    and both give the same statistics."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(24, 4, generator=g), torch.randint(0, 3, (24,), generator=g)

    class Stream(torch.utils.data.IterableDataset):
        def __iter__(self): return iter(zip(x.split(8), y.split(8)))

    def fit(train):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))
        t = Trainer(DataLoaders(train, TensorLoader(x, y, batch_size=8)), nn.CrossEntropyLoss(), torch.optim.SGD,
                    model, [BasicTrainCB(), ActivationStatsCB(lambda m: isinstance(m, nn.Linear), bins=5)])
        t.fit(2, lr=0.1)
        return t.ActivationStatsCB.stats

    sized = fit(TensorLoader(x, y, batch_size=8))
    streamed = fit(torch.utils.data.DataLoader(Stream(), batch_size=None))
    assert [s.shape for s in sized] == [(6, 7), (6, 7)]
    assert all(torch.equal(a, b) for a, b in zip(sized, streamed))


def test_containers_and_in_place_modules_record_their_own_outputs():
    # Large activations (the CPU's fast routes); a Sequential returns its ReLU's output, the very tensor, so its
    # record is the ReLU's copied; an in-place ReLU changes the Linear's output tensor after the Linear's record.
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 32, generator=g) * 2, torch.randint(0, 3, (64,), generator=g)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Sequential(nn.Linear(32, 512), nn.ReLU()), nn.Linear(512, 512), nn.ReLU(inplace=True),
                          nn.Linear(512, 3))
    t = Trainer(DataLoaders(TensorLoader(x, y, batch_size=32), TensorLoader(x, y, batch_size=32)),
                nn.CrossEntropyLoss(), torch.optim.SGD, model, [BasicTrainCB(), ActivationStatsCB()])
    t.fit(1, lr=1e-12)  # the weights barely move, so the final model reproduces every batch's activations
    cb = t.ActivationStatsCB
    assert cb.names == ["Sequential", "0 Sequential", "0.0 Linear", "0.1 ReLU", "1 Linear", "2 ReLU", "3 Linear"]

    def record(acts):
        return torch.cat([torch.stack([acts.mean(), acts.std()]), torch.histc(acts.abs(), 40, 0, 10)])

    with torch.no_grad():
        for b, xb in enumerate(x.split(32)):
            h0 = model[0][0](xb)
            h1 = model[0][1](h0)
            z = model[1](h1)
            outs = [model(xb), h1, h0, h1, z, z.relu(), model[3](z.relu())]
            assert h0.numel() >= 16384
            for name, stats, acts in zip(cb.names, cb.stats, outs):
                torch.testing.assert_close(stats[b], record(acts), atol=1e-5, rtol=1e-4, msg=f"{name}, batch {b}")
    assert torch.equal(cb.stats[1], cb.stats[3])  # the container's records are its ReLU's
    assert not torch.equal(cb.stats[4], cb.stats[5])  # the in-place ReLU's are not its Linear's


def test_modules_whose_output_is_no_float_tensor_are_passed_over():
    class Pair(nn.Module):  # returns something that is not a tensor
        def forward(self, x): return {"x": x}

    class Unwrap(nn.Module):
        def forward(self, d): return d["x"]

    class Labels(nn.Module):  # returns integers
        def forward(self, x): return x.argmax(1)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin, self.pair, self.unwrap, self.labels = nn.Linear(4, 3), Pair(), Unwrap(), Labels()

        def forward(self, x):
            h = self.unwrap(self.pair(self.lin(x)))
            self.labels(h)
            return h

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(16, 4, generator=g), torch.randint(0, 3, (16,), generator=g)
    cb = ActivationStatsCB(lambda m: not isinstance(m, Net))
    Trainer(DataLoaders(TensorLoader(x, y, batch_size=8), TensorLoader(x, y, batch_size=8)), nn.CrossEntropyLoss(),
            torch.optim.SGD, Net(), [BasicTrainCB(), cb]).fit(1)
    assert cb.names == ["lin Linear", "pair Pair", "unwrap Unwrap", "labels Labels"]
    assert [len(s) for s in cb.stats] == [2, 0, 2, 0]  # the dict and the integers are passed over
    assert torch.equal(cb.stats[2], cb.stats[0])  # Unwrap returns the Linear's output itself
