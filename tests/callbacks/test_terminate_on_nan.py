import pytest
import torch

from AIsaac.all import TerminateOnNaNCB


class NaNAt:
    '''Makes the loss nan at one (epoch, batch) of the training phase'''

    order = 0
    observes = ('get_loss',)  # runs beside BasicTrainCB's get_loss

    def __init__(self, epoch, batch): self.at = (epoch, batch)

    def get_loss(self, trainer):
        if trainer.training and (trainer.epoch, trainer.batch_num) == self.at: trainer.loss = trainer.loss * torch.nan


class Count:
    order = 100
    def before_fit(self, trainer): self.n = 0
    def before_batch(self, trainer): self.n += trainer.training


def test_stops_before_the_bad_step(make_trainer, make_model, caplog):
    model = make_model()
    count = Count()
    t = make_trainer([NaNAt(1, 3), TerminateOnNaNCB(), count], model=model)
    t.fit(3)
    assert t.TerminateOnNaNCB.message.startswith("TerminateOnNaNCB: loss nan at epoch 1, batch 3 (training)")
    assert [(r.name, r.levelname, r.getMessage()) for r in caplog.records] == [
        ("AIsaac", "WARNING", t.TerminateOnNaNCB.message)]
    assert count.n == len(t.dls.train) + 4
    assert all(torch.isfinite(p).all() for p in model.parameters())  # the nan batch never stepped


@pytest.mark.parametrize("every", [3, 100])
def test_checking_every_k_batches_reports_the_exact_batch(make_trainer, every):
    count = Count()
    t = make_trainer([NaNAt(0, 4), TerminateOnNaNCB(every=every), count])
    t.fit(3)
    assert "at epoch 0, batch 4 (training)" in t.TerminateOnNaNCB.message
    # read at batch 5 (every=3) or at the end of the phase (every=100)
    assert count.n == (6 if every == 3 else len(t.dls.train))


def test_finite_losses_run_to_the_end(make_trainer):
    count = Count()
    t = make_trainer([TerminateOnNaNCB(every=2), count])
    t.fit(2)
    assert t.TerminateOnNaNCB.message is None and count.n == 2 * len(t.dls.train)
