import pytest

from AIsaac.all import EarlyStoppingCB, ProgressCB


class FakeLog:
    '''Plays MetricsCB: writes a scripted epoch_log at each epoch's final cleanup_epoch'''

    def __init__(self, values, key='valid'): self.values, self.key = values, key
    def log_keys(self, trainer): return {self.key}  # what it puts in epoch_log (checked at fit start)

    def cleanup_epoch(self, trainer):
        if not trainer.training: trainer.epoch_log = {'epoch': trainer.epoch, self.key: self.values[trainer.epoch]}


class EpochCounter:
    def before_fit(self, trainer): self.epochs = []
    def after_epoch(self, trainer):
        if trainer.training: self.epochs.append(trainer.epoch)


def run(make_trainer, values, capsys=None, **kwargs):
    counter = EpochCounter()
    t = make_trainer([FakeLog(values, kwargs.pop('key', 'valid')), EarlyStoppingCB(**kwargs), counter], metrics=False)
    t.fit(len(values))
    return t.EarlyStoppingCB, counter.epochs


def test_stops_after_patience_epochs_without_improvement(make_trainer, capsys, caplog):
    cb, epochs = run(make_trainer, [1.0, 0.8, 0.9, 0.85, 0.81, 0.5, 0.4], patience=3)
    assert epochs == [0, 1, 2, 3, 4] and cb.stopped_epoch == 4
    assert cb.best == 0.8 and cb.best_epoch == 1
    assert [r.getMessage() for r in caplog.records if r.name == "AIsaac"] == [
        "EarlyStoppingCB: no improvement of 'valid' for 3 epochs; stopped after epoch 4 (best 0.8 at epoch 1)."]
    assert caplog.records[-1].levelname == "INFO" and "stopped" not in capsys.readouterr().out  # logged, not printed


def test_message_silenced_and_only_on_the_main_process(make_trainer, capsys, caplog):
    import logging
    logging.getLogger("AIsaac").setLevel(logging.WARNING)
    try: run(make_trainer, [1.0, 2.0, 3.0], patience=1)
    finally: logging.getLogger("AIsaac").setLevel(logging.INFO)
    assert not caplog.records
    counter = EpochCounter()
    t = make_trainer([FakeLog([1.0, 2.0, 3.0], 'valid'), EarlyStoppingCB(patience=1), counter], metrics=False)
    t.is_main_process = False  # what AccelerateCB sets on the other processes
    t.fit(3)
    assert counter.epochs == [0, 1] and not caplog.records and capsys.readouterr().err == ""


def test_default_handler_writes_to_stderr_until_logging_is_configured(make_trainer, capsys):
    import logging
    root = logging.getLogger()
    saved = root.handlers[:]
    root.handlers.clear()  # as in a script that never configured logging
    try: run(make_trainer, [1.0, 2.0, 3.0], patience=1)
    finally: root.handlers[:] = saved
    err = capsys.readouterr().err
    assert err.count("EarlyStoppingCB: no improvement") == 1


def test_min_delta_and_max_mode(make_trainer):
    cb, epochs = run(make_trainer, [0.5, 0.505, 0.509, 0.6, 0.7], patience=2, mode='max', min_delta=0.01, key='acc',
                     monitor='acc')
    assert epochs == [0, 1, 2] and cb.best == 0.5


def test_runs_to_the_end_while_improving(make_trainer):
    cb, epochs = run(make_trainer, [3., 2., 1.], patience=1)
    assert epochs == [0, 1, 2] and cb.stopped_epoch is None


def test_reads_metrics_cb_before_progress_clears_it(make_trainer):
    # Real MetricsCB and ProgressCB: the order must put it between them.
    t = make_trainer([EarlyStoppingCB(patience=1), ProgressCB(bars=False)])
    t.fit(3, lr=1e-9)  # a tiny lr: hardly any change; the strict improvement check decides
    assert t.EarlyStoppingCB.best is not None


def test_unknown_monitor_says_what_exists(make_trainer):
    t = make_trainer([EarlyStoppingCB(monitor='acuracy')])
    with pytest.raises(Exception, match="acuracy.*epoch, train, valid"): t.fit(1)


def test_bad_arguments():
    with pytest.raises(ValueError, match="mode"): EarlyStoppingCB(mode='lowest')
    with pytest.raises(ValueError, match="patience"): EarlyStoppingCB(patience=0)


def empty_valid_dls(make_dls):
    from torch.utils.data import DataLoader, TensorDataset
    from AIsaac.all import DataLoaders
    import torch
    dls = make_dls()
    return DataLoaders(dls.train, DataLoader(TensorDataset(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long)), batch_size=8))


@pytest.mark.parametrize("monitor", ["valid", "Accuracy"])
def test_an_empty_validation_loader_is_refused_at_fit_start(make_trainer, make_dls, monitor):
    """Issue 21: an empty validation loader turned early stopping off without a word."""
    from AIsaac.all import Accuracy, CallbackSetupError, MetricsCB
    trainer = make_trainer([EarlyStoppingCB(monitor, patience=1)], metrics=False, dls=empty_valid_dls(make_dls))
    trainer.add_callbacks(MetricsCB(Accuracy=Accuracy()))
    with pytest.raises(CallbackSetupError, match=rf"EarlyStoppingCB monitors '{monitor}', a validation number, but "
                                                 r"the validation loader is empty \(0 batches\).*monitor='train'"):
        trainer.fit(2, lr=0.1)
    assert trainer.epoch == 0  # nothing ran
    trainer.remove_callbacks(trainer.EarlyStoppingCB)
    trainer.fit(2, lr=0.1, callbacks=[EarlyStoppingCB("train", patience=1)])  # a training number is fine
