import logging

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
    saved = torch.load(path, weights_only=True)
    assert equal(saved["model"], fake.weights[2])
    assert saved["best"] == {"monitor": "valid", "value": 0.1, "epoch": 2, "step": 3 * len(t.dls.train)}
    assert equal(t.model.state_dict(), fake.weights[2])


def test_max_mode(make_trainer):
    t, fake = fit(make_trainer, [0.2, 0.9, 0.1], mode='max')
    assert equal(t.model.state_dict(), fake.weights[1])


def test_the_file_loads_with_trainer_load(make_trainer, tmp_path):
    path = tmp_path / "best.pt"
    t, fake = fit(make_trainer, [0.5, 0.2, 0.4], path=path, restore=False)
    assert equal(t.model.state_dict(), fake.weights[2])  # not restored: the last epoch's weights
    other = make_trainer(metrics=False)
    assert not equal(other.model.state_dict(), fake.weights[1])
    other.load(path)
    assert equal(other.model.state_dict(), fake.weights[1])


def test_says_which_epoch_and_step_it_restored(make_trainer, caplog):
    with caplog.at_level(logging.INFO, logger="AIsaac"):
        t, fake = fit(make_trainer, [0.9, 0.25, 0.5, 0.7])
    n = len(t.dls.train)  # one optimizer step per batch: the best epoch, 1, ended at step 2n
    assert t.SaveBestCB.best_step == 2 * n and t.step == 4 * n
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("SaveBestCB")]
    assert said == [f"SaveBestCB: restored the weights of epoch 1 (step {2 * n}), the best 'valid': 0.25; "
                    f"trainer.epoch_log and the table still show the last epoch."]


def test_says_nothing_without_restoring(make_trainer, caplog):
    with caplog.at_level(logging.INFO, logger="AIsaac"): fit(make_trainer, [0.9, 0.25], restore=False)
    assert not [r for r in caplog.records if r.getMessage().startswith("SaveBestCB")]
def test_an_empty_validation_loader_is_refused_at_fit_start(make_trainer, make_dls):
    """Issue 21: an empty validation loader turned save-best off without a word."""
    import pytest
    from torch.utils.data import DataLoader, TensorDataset
    from AIsaac.all import CallbackSetupError, DataLoaders
    dls = make_dls()
    dls = DataLoaders(dls.train, DataLoader(TensorDataset(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long)), batch_size=8))
    with pytest.raises(CallbackSetupError, match=r"SaveBestCB monitors 'valid'.*validation loader is empty"):
        make_trainer([SaveBestCB()], dls=dls).fit(1, lr=0.1)


def test_a_full_disk_while_saving_the_best_keeps_the_previous_best(make_trainer, tmp_path, monkeypatch):
    """The best file is written atomically: a write that fails (here for want of room) leaves the last one whole."""
    import errno
    import os
    import pytest
    path = tmp_path / "best.pt"
    t, fake = fit(make_trainer, [3., 2., 1.], path=path)
    best = torch.load(path, weights_only=True)["model"]
    assert equal(best, fake.weights[2])
    real = os.fdopen

    class Full:
        def __init__(self, f): self.f = f
        def write(self, data): raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        def __getattr__(self, name): return getattr(self.f, name)
        def __enter__(self): return self
        def __exit__(self, *exc): return self.f.__exit__(*exc)

    monkeypatch.setattr(os, "fdopen", lambda fd, mode="r", *a, **k: Full(real(fd, mode, *a, **k)) if "w" in mode
                        else real(fd, mode, *a, **k))
    with pytest.raises((OSError, RuntimeError)): fit(make_trainer, [0.5], path=path)
    monkeypatch.undo()
    assert equal(torch.load(path, weights_only=True)["model"], best)  # not truncated: the previous best is whole
    assert [p.name for p in tmp_path.iterdir()] == ["best.pt"]  # and no temporary file is left
