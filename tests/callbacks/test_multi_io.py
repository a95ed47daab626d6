"""Several inputs and outputs: BasicTrainCB(n_inp=2), a weighted two-part loss, metrics with selectors, get_preds."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torcheval.metrics import MeanSquaredError

from AIsaac.all import Accuracy, BasicTrainCB, DataLoaders, MetricsCB, Trainer
from AIsaac.callback import is_record_key


class TwoHeads(nn.Module):
    """(image, tabular) -> (class logits, a regression value)."""

    def __init__(self):
        super().__init__()
        self.img, self.tab = nn.Linear(16, 8), nn.Linear(4, 8)
        self.cls, self.reg = nn.Linear(16, 3), nn.Linear(16, 1)

    def forward(self, image, tabular):
        h = torch.relu(torch.cat([self.img(image), self.tab(tabular)], 1))
        return self.cls(h), self.reg(h).squeeze(-1)


def loss_func(preds, y_cls, y_reg): return F.cross_entropy(preds[0], y_cls) + 0.5 * F.mse_loss(preds[1], y_reg)


def data():
    g = torch.Generator().manual_seed(0)
    img, tab = torch.randn(100, 16, generator=g), torch.randn(100, 4, generator=g)
    y_cls, y_reg = (img[:, 0] > 0).long() + (tab[:, 0] > 0).long(), img[:, 1] - tab[:, 1]
    ds = lambda s: TensorDataset(img[s], tab[s], y_cls[s], y_reg[s])
    return DataLoaders(DataLoader(ds(slice(0, 70)), batch_size=16), DataLoader(ds(slice(70, None)), batch_size=8))


def test_two_inputs_two_outputs_train_like_plain_pytorch():
    dls = data()
    torch.manual_seed(0)
    model, ref = TwoHeads(), TwoHeads()
    ref.load_state_dict(model.state_dict())
    metrics = MetricsCB(acc=(Accuracy(), lambda p, y_cls, y_reg: (p[0], y_cls)),
                        mse=(MeanSquaredError(), lambda p, y_cls, y_reg: (p[1], y_reg)), on_train=True)
    trainer = Trainer(dls, loss_func, torch.optim.SGD, model, [BasicTrainCB(n_inp=2), metrics])
    trainer.fit(2, lr=0.1)

    opt = torch.optim.SGD(ref.parameters(), lr=0.1)
    for epoch in range(2):
        ref.train()
        tl, tn, hits = 0.0, 0, 0
        for img, tab, yc, yr in dls.train:
            p = ref(img, tab)
            loss = loss_func(p, yc, yr)
            tl, tn, hits = tl + loss.item() * len(yc), tn + len(yc), hits + (p[0].argmax(1) == yc).sum().item()
            loss.backward()
            opt.step()
            opt.zero_grad()
        ref.eval()
        with torch.no_grad():
            img, tab, yc, yr = dls.valid.dataset.tensors
            p = ref(img, tab)
            vl = sum(loss_func(ref(*b[:2]), *b[2:]).item() * len(b[2]) for b in dls.valid) / len(yc)
        log = trainer.MetricsCB.losses_epoch[epoch] | trainer.MetricsCB.metrics_epoch[epoch]
        assert log["train"] == pytest.approx(tl / tn, rel=1e-5) and log["valid"] == pytest.approx(vl, rel=1e-5)
        assert log["acc"] == pytest.approx((p[0].argmax(1) == yc).float().mean().item())
        assert log["mse"] == pytest.approx(F.mse_loss(p[1], yr).item(), rel=1e-5)
        assert log["train_acc"] == pytest.approx(hits / tn)  # on_train: computed on the training batches too
    for k, v in ref.state_dict().items(): torch.testing.assert_close(model.state_dict()[k], v)
    shown = [k for k in trainer.epoch_log if not is_record_key(k)]  # (lr, mom and times are records of the run)
    assert shown == ["epoch", "train", "valid", "acc", "mse", "train_acc", "train_mse"]

    preds, targets = trainer.get_preds()  # tuple predictions and targets keep their structure
    assert isinstance(preds, tuple) and isinstance(targets, tuple)
    torch.testing.assert_close(preds[0], p[0])
    torch.testing.assert_close(preds[1], p[1])
    assert torch.equal(targets[0], yc) and torch.equal(targets[1], yr)
    torch.testing.assert_close(trainer.predict((img[:3], tab[:3]))[1], p[1][:3])


def test_tuple_predictions_pass_metrics_cb_without_metrics():
    trainer = Trainer(data(), loss_func, torch.optim.SGD, TwoHeads(), [BasicTrainCB(n_inp=2), MetricsCB()])
    trainer.fit(1)
    assert {k for k in trainer.epoch_log if not is_record_key(k)} == {"epoch", "train", "valid"}
