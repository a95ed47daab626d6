"""MetricsCB reads losses once per phase; its per-batch records are compact and equal the losses by hand."""
import torch
from torch import nn

from AIsaac.all import Accuracy, BasicTrainCB, DataLoaders, MetricsCB, TensorLoader, Trainer
from AIsaac.callbacks.metrics import BatchLosses


def fit(n=70, bs=16, epochs=2):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(n, 5, generator=g), torch.randint(0, 3, (n,), generator=g)
    torch.manual_seed(0)
    t = Trainer(DataLoaders(TensorLoader(x, y, batch_size=bs), TensorLoader(x[:30], y[:30], batch_size=bs)),
                nn.CrossEntropyLoss(), torch.optim.SGD, nn.Linear(5, 3), [BasicTrainCB(), MetricsCB(Accuracy())])
    t.fit(epochs, lr=0.1)
    return t, x, y


def test_epoch_losses_are_the_batch_losses_weighted_by_batch_size():
    t, x, y = fit()
    # The epoch means are the batch losses weighted by batch size (70 = 4 x 16 + 6 training samples).
    lb = t.MetricsCB.losses_batch
    assert len(lb) == 2 * (5 + 2) and [r['training'] for r in lb[:7]] == [True] * 5 + [False] * 2
    sizes = [16, 16, 16, 16, 6]
    train0 = sum(r['loss'] * s for r, s in zip(lb[:5], sizes)) / 70
    torch.testing.assert_close(t.MetricsCB.losses_epoch[0]['train'], train0)
    valid1 = (lb[12]['loss'] * 16 + lb[13]['loss'] * 14) / 30
    torch.testing.assert_close(t.MetricsCB.losses_epoch[1]['valid'], valid1)


def test_batch_records_equal_a_loop_by_hand():
    t, x, y = fit()
    torch.manual_seed(0)
    model, lf = nn.Linear(5, 3), nn.CrossEntropyLoss()
    opt = torch.optim.SGD(model.parameters(), 0.1)
    want = []
    for _ in range(2):
        for xb, yb in zip(x.split(16), y.split(16)):
            loss = lf(model(xb), yb)
            want.append({'training': True, 'loss': loss.item()})
            loss.backward(); opt.step(); opt.zero_grad()
        with torch.no_grad():
            want += [{'training': False, 'loss': lf(model(xb), yb).item()} for xb, yb in zip(x[:30].split(16), y[:30].split(16))]
    got = t.MetricsCB.losses_batch
    assert [r['training'] for r in got] == [r['training'] for r in want]
    torch.testing.assert_close([r['loss'] for r in got], [r['loss'] for r in want])


def test_batch_losses_is_a_list_of_dicts():
    b = BatchLosses([{'training': True, 'loss': 1.5}])
    b.add(False, [2.0, 3.0])
    assert len(b) == 3 and b[0] == {'training': True, 'loss': 1.5} and b[-1] == {'training': False, 'loss': 3.0}
    assert b[1:] == [{'training': False, 'loss': 2.0}, {'training': False, 'loss': 3.0}]
    assert b == list(b) and all(isinstance(r, dict) and 'loss' in r for r in b[:3])


def test_epoch_log_records_lr_per_group_momentum_and_phase_times():
    import time
    from functools import partial
    from AIsaac.all import is_record_key

    def two_groups(params, lr):  # the head trains 10x faster
        params = list(params)
        return torch.optim.SGD([{"params": params[:1]}, {"params": params[1:], "lr": lr * 10}], lr=lr, momentum=0.9)

    class Slow:  # each training batch takes 20 ms of wall time
        def after_batch(self, trainer):
            if trainer.training: time.sleep(0.02)

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 5, generator=g), torch.randint(0, 3, (64,), generator=g)
    dls = DataLoaders(TensorLoader(x, y, batch_size=16), TensorLoader(x[:16], y[:16], batch_size=16))
    t = Trainer(dls, nn.CrossEntropyLoss(), two_groups, nn.Linear(5, 3), [BasicTrainCB(), MetricsCB(), Slow()])
    t.fit(1, lr=0.01)
    log = t.epoch_log
    assert (log["lr_0"], log["lr_1"], log["mom_0"], log["mom_1"]) == (0.01, 0.1, 0.9, 0.9)
    assert 4 * 0.02 <= log["train_time"] < 4 * 0.02 + 2 and 0 < log["valid_time"] < log["train_time"]
    assert [k for k in log if not is_record_key(k)] == ["epoch", "train", "valid"]
    t = Trainer(dls, nn.CrossEntropyLoss(), partial(torch.optim.Adam, betas=(0.8, 0.99)), nn.Linear(5, 3),
                [BasicTrainCB(), MetricsCB()])
    t.fit(1, lr=0.003, valid=False)
    assert (t.epoch_log["lr"], t.epoch_log["mom"]) == (0.003, 0.8) and "valid_time" not in t.epoch_log
    t.fit(1, lr=0.003, train=False)  # validation only: no optimizer records
    assert set(t.epoch_log) == {"epoch", "valid", "valid_time"}
