"""`Mean` and `Accuracy` (AIsaac/runtime/metric_objects.py) against the same numbers computed by hand in torch."""
import math

import torch

from AIsaac.runtime.metric_objects import Accuracy, Mean


def test_weighted_mean():
    m = Mean()
    assert torch.isnan(m.compute())
    m.update(torch.tensor(2.0), weight=3).update(torch.tensor(4.0), weight=1).update(1.0)
    torch.testing.assert_close(m.compute(), torch.tensor((6 + 4 + 1) / 5))
    m.reset()
    m.update(torch.tensor([1.0, 3.0]))
    torch.testing.assert_close(m.compute(), torch.tensor(2.0))


def test_mean_of_batch_means_weighted_by_batch_size_is_the_mean_over_all_rows():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, generator=g, dtype=torch.float64)
    m = Mean()
    for chunk in x.split(16): m.update(chunk.mean(), weight=len(chunk))  # batches of 16, 16 and 8
    torch.testing.assert_close(m.compute(), x.mean().float())
    # A vector adds each entry with the weight: the same as adding them one by one.
    m.reset()
    m.update(x[:10], weight=2.0).update(x[10], weight=5.0)
    assert m.weight == 25.0
    torch.testing.assert_close(m.compute(), ((x[:10].sum() * 2 + x[10] * 5) / 25).float())


def test_mean_keeps_a_tensor_state_without_gradients_and_nothing_added_is_nan():
    w = torch.tensor(3.0, requires_grad=True)
    m = Mean().update(w * 2)
    assert isinstance(m.total, torch.Tensor) and not m.total.requires_grad  # detached: no graph kept across batches
    assert m.compute().item() == 6.0
    m.reset()
    m.update(5.0, weight=0)
    assert math.isnan(m.compute().item())


def test_accuracy():
    a = Accuracy()
    preds, targ = torch.randn(50, 4), torch.randint(0, 4, (50,))
    a.update(preds[:20], targ[:20]).update(preds[20:], targ[20:])
    torch.testing.assert_close(a.compute(), (preds.argmax(1) == targ).float().mean())


def test_accuracy_over_sequences_counts_every_position_and_resets():
    g = torch.Generator().manual_seed(1)
    preds, targ = torch.randn(6, 5, 7, generator=g), torch.randint(0, 7, (6, 5), generator=g)  # (batch, time, classes)
    a = Accuracy()
    for p, t in zip(preds.split(4), targ.split(4)): a.update(p, t)
    assert a.count == 30
    torch.testing.assert_close(a.compute(), (preds.argmax(-1) == targ).float().mean())
    a.reset()
    assert math.isnan(a.compute().item()) and a.count == 0
