"""OptunaPruningCB in a real Optuna study: some trials are PRUNED, none FAIL."""
import pytest
import torch

from AIsaac.all import OptunaPruningCB

optuna = pytest.importorskip("optuna")


def test_study_prunes_bad_trials_and_none_fail(tiny_trainer, caplog):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    fits = []

    def objective(trial):
        lr = trial.suggest_float("lr", 1e-4, 1.0, log=True)
        trainer = tiny_trainer(OptunaPruningCB(trial, monitor="valid"))
        fits.append(trainer)
        trainer.fit(6, lr=lr)
        return trainer.epoch_log["valid"]

    sampler = optuna.samplers.TPESampler(seed=0)
    # Every trial after the first two is compared, from its first epoch, with the median of the earlier ones.
    study = optuna.create_study(sampler=sampler, pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0))
    study.enqueue_trial({"lr": 0.5})
    study.enqueue_trial({"lr": 0.3})
    study.enqueue_trial({"lr": 1e-4})  # learns nothing: worse than the median from epoch 0
    study.optimize(objective, n_trials=8)
    states = [t.state for t in study.trials]
    assert optuna.trial.TrialState.FAIL not in states
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert pruned and study.trials[2].state == optuna.trial.TrialState.PRUNED
    for t in pruned:
        trainer, cb = fits[t.number], fits[t.number].OptunaPruningCB
        # Stopped right after the epoch it pruned at; its reports are the epochs' valid losses.
        assert cb.pruned_epoch == max(t.intermediate_values) == len(trainer.MetricsCB.losses_epoch) - 1
        reported = [t.intermediate_values[i] for i in sorted(t.intermediate_values)]
        assert reported == pytest.approx([lo["valid"] for lo in trainer.MetricsCB.losses_epoch])
        assert trainer.ProgressCB.epoch_bar is None  # every callback cleaned up
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert complete and all(len(t.intermediate_values) == 6 for t in complete)
    assert any("pruned at epoch" in r.getMessage() for r in caplog.records)


def test_pruned_trial_reaches_optuna_as_trial_pruned(tiny_trainer):
    study = optuna.create_study(pruner=optuna.pruners.ThresholdPruner(upper=0.0))  # prunes at any loss
    trial = study.ask()
    trainer = tiny_trainer(OptunaPruningCB(trial))
    with pytest.raises(optuna.TrialPruned, match="pruned at epoch 0"): trainer.fit(3, lr=0.1)
    assert len(trainer.MetricsCB.losses_epoch) == 1
    torch.testing.assert_close(trial.storage.get_trial(trial._trial_id).intermediate_values[0],
                               trainer.MetricsCB.losses_epoch[0]["valid"])
