import torch
from torch import nn

from AIsaac.all import ActivationStatsCB, BasicTrainCB, DataLoaders, TensorLoader, Trainer


def test_records_equal_the_statistics_by_hand():
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
