"""HooksCallback: the hook function runs in the chosen phases of a real fit, records equal plain PyTorch, hooks never
outlive the fit, and nothing is read from the device per batch."""
import pytest
import torch
from torch import nn

from AIsaac.all import BasicTrainCB, CallbackError, HooksCallback, Trainer, append_stats, get_hist, get_min


def model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))


def count_calls(hook, module, inputs, output): hook.calls = getattr(hook, "calls", 0) + 1


@pytest.mark.parametrize("on_train,on_valid,want", [(True, False, 6), (False, True, 3), (True, True, 9)])
def test_hook_runs_in_the_chosen_phases(tiny_dls, on_train, on_valid, want):
    cb = HooksCallback(count_calls, lambda m: isinstance(m, nn.ReLU), on_train=on_train, on_valid=on_valid)
    Trainer(tiny_dls, nn.CrossEntropyLoss(), torch.optim.SGD, model(), [BasicTrainCB(), cb]).fit(1)
    assert cb.names == ["1 ReLU"] and len(cb) == 1
    assert cb[0].calls == want  # 6 training batches, 3 validation batches


def test_append_stats_in_a_fit_equals_plain_pytorch(tiny_dls):
    m, initial = model(), model()  # same seed: `initial` has the weights the first batch saw
    cb = HooksCallback(append_stats, lambda mod: isinstance(mod, nn.Linear))
    Trainer(tiny_dls, nn.CrossEntropyLoss(), torch.optim.SGD, m, [BasicTrainCB(), cb]).fit(2)
    assert cb.names == ["0 Linear", "2 Linear"]
    first = cb.hooks[0]
    assert [len(s) for s in first.stats] == [12, 12, 12]  # 2 epochs x 6 training batches
    assert all(v.device.type == "cpu" for s in first.stats for v in s)
    acts = initial[0](tiny_dls.train.dataset.tensors[0][:16]).detach()
    torch.testing.assert_close(first.stats[0][0], acts.mean())
    torch.testing.assert_close(first.stats[1][0], acts.std())
    torch.testing.assert_close(get_hist(first)[:, 0], torch.histc(acts.abs(), 40, 0, 10).log1p())
    hist = torch.histc(acts.abs(), 40, 0, 10)
    torch.testing.assert_close(get_min(first)[0], hist[0] / hist.sum())
    assert all(h.removed for h in cb) and all(not mod._forward_hooks for mod in m.modules())


def test_given_modules_and_hooks_removed_after_a_failed_fit(tiny_dls):
    m = model()

    class Boom:
        def after_batch(self, trainer): raise RuntimeError("x")
    cb = HooksCallback(count_calls, modules=[m[2]])
    t = Trainer(tiny_dls, nn.CrossEntropyLoss(), torch.optim.SGD, m, [BasicTrainCB(), cb])
    with pytest.raises(CallbackError): t.fit(1, callbacks=[Boom()])
    assert cb.names == ["2 Linear"] and cb[0].calls == 1
    assert all(not mod._forward_hooks for mod in m.modules())
    t.fit(1)  # a new fit, new hooks
    assert cb[0].calls == 6 and cb[0].removed


def test_no_host_reads_per_batch(monkeypatch, tiny_dls):
    from torch.utils.data import DataLoader, TensorDataset

    from AIsaac.all import DataLoaders

    def reads(n_batches):
        calls = [0]
        for name in ("item", "tolist", "cpu", "__float__", "__bool__", "__int__"):
            orig = getattr(torch.Tensor, name)
            def counted(self, *a, _orig=orig, **k):
                calls[0] += 1
                return _orig(self, *a, **k)
            monkeypatch.setattr(torch.Tensor, name, counted)
        x, y = torch.randn(n_batches * 8, 6), torch.randint(0, 3, (n_batches * 8,))
        dls = DataLoaders(DataLoader(TensorDataset(x, y), batch_size=8), DataLoader(TensorDataset(x, y), batch_size=8))
        Trainer(dls, nn.CrossEntropyLoss(), torch.optim.SGD, model(), [BasicTrainCB(), HooksCallback(append_stats)]).fit(2)
        monkeypatch.undo()
        return calls[0]
    assert reads(2) == reads(8)


def test_errors():
    with pytest.raises(TypeError, match="hookfunc must be callable"): HooksCallback("append_stats")
    with pytest.raises(TypeError, match="module_filter must be callable"): HooksCallback(append_stats, nn.ReLU())
    with pytest.raises(TypeError, match="modules must be torch.nn.Modules"): HooksCallback(append_stats, modules=["0"])
