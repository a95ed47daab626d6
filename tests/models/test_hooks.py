"""Hook, Hooks, append_stats, get_hist, get_min: used as the course's notebooks use them, against plain PyTorch."""
import pytest
import torch
from torch import nn

from AIsaac.all import Hook, Hooks, append_stats, get_hist, get_min
from AIsaac.models.hooks import records_to_cpu


def model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3))


def test_hooks_record_stats_equal_to_plain_pytorch_and_come_off_on_exit():
    m, xs = model(), [torch.randn(16, 5) * 3 for _ in range(3)]
    with Hooks(m, append_stats) as hooks:  # a Sequential stands for its children, as in the course
        for x in xs: m(x)
    assert len(hooks) == 3 and all(h.removed for h in hooks)
    assert all(not mod._forward_hooks for mod in m.modules())
    for i, h in enumerate(hooks):
        means, stds, hists = h.stats
        assert len(means) == len(stds) == len(hists) == 3
        for x, mean, std, hist in zip(xs, means, stds, hists):
            with torch.no_grad(): acts = m[:i + 1](x)
            torch.testing.assert_close(mean, acts.mean())
            torch.testing.assert_close(std, acts.std())
            torch.testing.assert_close(hist, torch.histc(acts.abs(), 40, 0, 10))
    m(xs[0])  # off: nothing more is recorded
    assert len(hooks[0].stats[0]) == 3


def test_get_hist_and_get_min_by_hand():
    h = Hook(nn.ReLU(), append_stats)
    h.module(torch.tensor([0.0, 0.1, 0.3, 5.0]))   # |x| in 40 bins over [0, 10]: 0.25 wide; bin 0 holds 0, 0.1
    h.module(torch.tensor([-20.0, 20.0]))           # ReLU: 0 and 20; 20 is out of range, 0 in bin 0
    h.remove()
    hist = get_hist(h)
    assert hist.shape == (40, 2)  # bins x records, time to the right
    want = torch.zeros(40, 2)
    want[0, 0], want[1, 0], want[20, 0], want[0, 1] = 2, 1, 1, 1
    torch.testing.assert_close(hist, want.log1p())
    torch.testing.assert_close(get_min(h), torch.tensor([2 / 4, 1 / 1]))


def test_a_hook_keeps_its_own_state_and_the_output_is_unchanged():
    lin = model()[0]
    x = torch.randn(4, 5)

    def count(hook, module, inputs, output):
        hook.calls = getattr(hook, "calls", 0) + 1
        hook.last_input_shape = tuple(inputs[0].shape)
    with Hook(lin, count) as h:
        out = lin(x)
        lin(x)
    torch.testing.assert_close(out, x @ lin.weight.T + lin.bias)
    assert (h.calls, h.last_input_shape, h.removed) == (2, (4, 5), True)
    h.remove()  # again: a no-op


def test_append_stats_skips_outputs_that_are_not_float_tensors():
    h = Hook(nn.Identity(), append_stats)
    h.module(torch.tensor([1, 2, 3]))  # integers: nothing to record
    assert getattr(h, "stats", None) is None
    h.module((torch.ones(3), torch.zeros(3)))  # a tuple: its first item
    assert [float(v[0]) for v in h.stats[:2]] == [1.0, 0.0]
    h.remove()


def test_errors_say_what_to_pass():
    with pytest.raises(TypeError, match="torch.nn.Module"): Hook("conv", append_stats)
    with pytest.raises(TypeError, match="callable"): Hook(nn.ReLU(), None)
    with pytest.raises(ValueError, match=r"pass \[module\]"): Hooks(nn.Linear(2, 2), append_stats)
    with pytest.raises(TypeError, match="every item"): Hooks([nn.ReLU(), 3], append_stats)
    with pytest.raises(TypeError, match="iterable of modules"): Hooks(3, append_stats)
    with pytest.raises(ValueError, match="run the model"): get_hist(Hook(nn.ReLU(), append_stats))


def test_records_to_cpu_keeps_values_and_structure():
    recs = ([torch.tensor(1.), torch.tensor(2.)], [torch.ones(3), torch.zeros(3)], {"a": [torch.tensor([5])]})
    out = records_to_cpu(recs)
    assert isinstance(out, tuple) and isinstance(out[0], list) and isinstance(out[2], dict)
    assert [float(v) for v in out[0]] == [1., 2.] and torch.equal(out[1][1], torch.zeros(3))
    assert out[2]["a"][0].tolist() == [5]


# ---- the large-tensor routes of the statistics (CPU float32, from 16384 values on) ----
def _edges_and_neighbours(lo, hi, bins):
    edges = torch.linspace(lo, hi, bins + 1)
    up, down = torch.nextafter(edges, edges + 1), torch.nextafter(edges, edges - 1)
    return torch.cat([edges, up, down, torch.nextafter(up, up + 1)])


@pytest.mark.parametrize("lo,hi,bins", [(0.0, 10.0, 40), (0, 10, 5), (-1.0, 3.3, 17), (0.0, 1e-3, 40),
                                         (-0.5, 7.77, 40), (0.0, 1e30, 3)])
def test_abs_histogram_counts_as_histc_does_at_every_edge(lo, hi, bins):
    from AIsaac.models.hooks import StatsScratch, abs_histogram
    g = torch.Generator().manual_seed(bins)
    scratch = StatsScratch()
    for _ in range(5):
        near = _edges_and_neighbours(lo, hi, bins)
        x = torch.cat([torch.randn(30000, generator=g) * (hi - lo) / 2, near, -near,
                       torch.tensor([float("nan"), float("inf"), -float("inf"), 0.0, -0.0, 3e38])])
        x = x[torch.randperm(len(x), generator=g)]
        x = torch.stack([x, torch.zeros_like(x)], 1)[:, 0]  # not contiguous either
        want = torch.histc(x.abs(), bins, lo, hi)
        assert torch.equal(abs_histogram(x, bins, lo, hi), want)
        assert torch.equal(abs_histogram(x, bins, lo, hi, scratch=scratch), want)
        assert (x.abs() > hi).sum() > 100 and torch.isnan(x).any()  # values past the range and NaNs: left out


def test_abs_histogram_falls_back_to_histc_elsewhere():
    from AIsaac.models.hooks import abs_histogram
    x = torch.randn(40000, dtype=torch.float64) * 4
    for args in [(x, 40, 0.0, 10.0), (x.float(), 40, 1.0, 10.0), (x.float()[:100], 40, 0.0, 10.0),
                 (x.float(), 7, -3e38, 3e38)]:
        assert torch.equal(abs_histogram(*args), torch.histc(args[0].abs(), *args[1:]))


def test_large_activations_record_what_torch_computes():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(64, 2048), nn.ReLU())
    x = torch.randn(64, 64) * 3
    with Hooks([m[0], m[1]], append_stats) as hooks, torch.no_grad(): m(x)
    with torch.no_grad(): outs = [m[0](x), m(x)]
    assert outs[0].numel() >= 100000  # a running float32 sum would be 1e-5 off here
    for h, acts in zip(hooks, outs):
        mean, std, hist = (s[0] for s in h.stats)
        torch.testing.assert_close(mean, acts.mean())
        torch.testing.assert_close(std, acts.std())
        assert torch.equal(hist, torch.histc(acts.abs(), 40, 0, 10))
