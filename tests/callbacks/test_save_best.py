import torch

from AIsaac.all import SaveBestCB


class FakeValid:
    '''Plays MetricsCB with scripted valid losses; remembers the weights at each epoch's end'''

    def __init__(self, values): self.values, self.weights = values, []
    def log_keys(self, trainer): return {'valid'}  # what it puts in epoch_log (checked at fit start)

    def cleanup_epoch(self, trainer):
        if trainer.training: return
        self.weights.append({k: v.clone() for k, v in trainer.model.state_dict().items()})
        trainer.epoch_log = {'epoch': trainer.epoch, 'valid': self.values[trainer.epoch]}


def fit(make_trainer, values, **kwargs):
    fake = FakeValid(values)
    t = make_trainer([fake, SaveBestCB(**kwargs)], metrics=False)
    t.fit(len(values), lr=0.5)
    return t, fake


def equal(a, b): return all(torch.equal(a[k], b[k]) for k in a)


def test_restores_best_weights_in_memory(make_trainer):
    t, fake = fit(make_trainer, [1.0, 0.3, 0.7, 0.9])
    assert equal(t.model.state_dict(), fake.weights[1]) and not equal(t.model.state_dict(), fake.weights[3])
    assert t.SaveBestCB.best_epoch == 1


def test_keeps_last_weights_without_restore(make_trainer):
    t, fake = fit(make_trainer, [1.0, 0.3, 0.7], restore=False)
    assert equal(t.model.state_dict(), fake.weights[2])


def test_on_disk(make_trainer, tmp_path):
    path = tmp_path / "best.pt"
    t, fake = fit(make_trainer, [0.2, 0.3, 0.1, 0.5], path=path, mode='min')
    assert equal(torch.load(path, weights_only=True), fake.weights[2])
    assert equal(t.model.state_dict(), fake.weights[2])


def test_max_mode(make_trainer):
    t, fake = fit(make_trainer, [0.2, 0.9, 0.1], mode='max')
    assert equal(t.model.state_dict(), fake.weights[1])
