"""Mean and Accuracy against plain torch."""
import torch

from AIsaac.callbacks.metrics import Accuracy, Mean


def test_weighted_mean():
    m = Mean()
    assert torch.isnan(m.compute())
    m.update(torch.tensor(2.0), weight=3).update(torch.tensor(4.0), weight=1).update(1.0)
    torch.testing.assert_close(m.compute(), torch.tensor((6 + 4 + 1) / 5))
    m.reset()
    m.update(torch.tensor([1.0, 3.0]))
    torch.testing.assert_close(m.compute(), torch.tensor(2.0))


def test_accuracy():
    a = Accuracy()
    preds, targ = torch.randn(50, 4), torch.randint(0, 4, (50,))
    a.update(preds[:20], targ[:20]).update(preds[20:], targ[20:])
    torch.testing.assert_close(a.compute(), (preds.argmax(1) == targ).float().mean())
