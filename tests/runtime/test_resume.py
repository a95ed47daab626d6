"""Resuming: the setup and state checks against the saved run, the run id, the restore and the replay of an epoch."""
import re

import pytest
import torch
from torch import nn

from AIsaac.all import CheckpointCB, CheckpointError
from AIsaac.runtime.checkpoint_file import checkpoint_files
from AIsaac.runtime.resume import check_setup, fit_setup, prepare_resume
from tests.helpers.small_fit import ScaleCB, make_trainer


@pytest.fixture
def saved(tmp_path):
    """A folder holding the checkpoint of a one-epoch fit (with a ScaleCB whose scale was 3)."""
    make_trainer(callbacks=[ScaleCB(3.0)]).fit(1, lr=0.1, callbacks=[CheckpointCB(tmp_path)])
    return tmp_path


def test_empty_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="No checkpoint in"): make_trainer().fit(1, resume_from=tmp_path)


def test_model_of_another_shape_is_refused_naming_the_keys(saved):
    wider = nn.Sequential(nn.Linear(4, 7), nn.ReLU(), nn.Linear(7, 2))
    trainer = make_trainer(model=wider, callbacks=[ScaleCB()])
    before = [p.detach().clone() for p in wider.parameters()]
    with pytest.raises(CheckpointError, match=r"shape mismatch: 0\.weight \(saved \(5, 4\), model \(7, 4\)\)"):
        trainer.fit(1, resume_from=saved)
    for a, b in zip(before, wider.parameters()): assert torch.equal(a, b)  # refused before anything changed
    assert trainer.opt is None


def test_model_with_other_layers_is_refused_naming_the_keys(saved):
    deeper = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 2), nn.Linear(2, 2))
    with pytest.raises(CheckpointError, match="missing keys: 3.weight, 3.bias"):
        make_trainer(model=deeper, callbacks=[ScaleCB()]).fit(1, resume_from=saved)
    other = nn.Sequential(nn.Linear(4, 2))
    with pytest.raises(CheckpointError, match="unexpected keys: 2.weight, 2.bias"):
        make_trainer(model=other, callbacks=[ScaleCB()]).fit(1, resume_from=saved)


def test_callback_state_is_restored_by_name(saved):
    trainer = make_trainer(callbacks=[ScaleCB(1.0)])
    trainer.fit(2, lr=0.1, resume_from=saved, allow_changes=("n_epochs",))  # one more epoch than saved: allowed
    assert trainer.ScaleCB.scale == 3.0


def test_callbacks_with_state_must_match(saved):
    with pytest.raises(CheckpointError, match="callbacks: missing ScaleCB.*allow_changes=\\('callbacks',\\)"):
        make_trainer().fit(1, lr=0.1, resume_from=saved)

    class OtherCB(ScaleCB): pass

    with pytest.raises(CheckpointError, match="callbacks: new OtherCB"):
        make_trainer(callbacks=[ScaleCB(), OtherCB()]).fit(1, lr=0.1, resume_from=saved)
    with pytest.raises(CheckpointError, match="does not hold: OtherCB"):  # a fit-only callback with state
        make_trainer(callbacks=[ScaleCB()]).fit(1, lr=0.1, resume_from=saved, callbacks=[OtherCB()])


def test_optimizer_of_another_kind_is_a_clear_error(saved):
    trainer = make_trainer(callbacks=[ScaleCB()])
    trainer.opt_func = lambda params, lr: torch.optim.SGD([{"params": list(params)[:2]}, {"params": []}], lr=lr)
    with pytest.raises(CheckpointError, match="number of param groups: saved 1, now 2"):
        trainer.fit(1, lr=0.1, resume_from=saved)
    with pytest.raises(CheckpointError, match="optimizer state does not fit"):
        trainer.fit(1, lr=0.1, resume_from=saved, allow_changes=("opt",))


def test_train_loader_shorter_than_the_checkpoint_position(tmp_path):
    trainer = make_trainer(n=16)
    trainer.fit(1, lr=0.1, callbacks=[CheckpointCB(tmp_path, every_n_batches=3, every_epoch=False)])
    short = make_trainer(n=8)
    with pytest.raises(CheckpointError, match="batches per epoch: saved 4, now 2"):
        short.fit(1, lr=0.1, resume_from=tmp_path)
    with pytest.raises(CheckpointError, match="saved 3 batches into an epoch, but the train loader now has only 2"):
        short.fit(1, lr=0.1, resume_from=tmp_path, allow_changes=("batch_size",))


def test_prepare_resume_keeps_the_saved_runs_id_and_gives_a_new_fit_a_new_one(saved):
    trainer = make_trainer(callbacks=[ScaleCB()])
    opt = torch.optim.SGD(trainer.model.parameters(), lr=0.1)
    setup = fit_setup(trainer, 1, opt)
    checkpoint, run_id = prepare_resume(trainer, saved, setup, ())
    assert checkpoint_files(saved)[-1].name.endswith(f"-{run_id}.pt") and checkpoint["setup"]["run_id"] == run_id
    assert checkpoint["position"] == {"epoch": 1, "batch": 0, "loader_rng": None, "fetch_rng": None, "n_epochs": 1,
                                      "step": 4}
    none, new = prepare_resume(trainer, None, setup, ())
    assert none is None and re.fullmatch(r"[0-9a-f]{8}", new) and new != run_id
    assert prepare_resume(trainer, None, setup, ())[1] != new
    with pytest.raises(CheckpointError, match=r"n_epochs: saved 1, now 2"):
        prepare_resume(trainer, saved, fit_setup(trainer, 2, opt), ())


def test_fit_setup_records_what_a_resume_compares():
    trainer = make_trainer(callbacks=[ScaleCB()])
    opt = torch.optim.SGD(trainer.model.parameters(), lr=0.1, momentum=0.9)
    extra = CheckpointCB("unused")
    setup = fit_setup(trainer, 3, opt, fit_only=[extra])
    assert setup["n_epochs"] == 3 and setup["batch_size"] == 4 and setup["train_batches"] == 4
    assert setup["opt"] == "torch.optim.sgd.SGD" and setup["hparams"][0]["momentum"] == 0.9
    assert setup["callbacks"] == ["BasicTrainCB", "ScaleCB"]
    check_setup(setup, setup)  # the same setup: nothing to report
    with pytest.raises(ValueError, match="allow_changes names \\['epochs'\\]; it takes any of n_epochs"):
        check_setup(setup, setup, allow=("epochs",))
    lower = {**setup, "hparams": [{**setup["hparams"][0], "lr": 0.01}]}
    with pytest.raises(CheckpointError, match="param group 0 lr: saved 0.1, now 0.01.*allow_changes=\\('lr',\\)"):
        check_setup(setup, lower)
    check_setup(setup, lower, allow="lr")


# ---- what changes training: which parameters train, a schedule's length, a callback's state ----
def test_a_frozen_run_resumed_unfrozen_is_refused_unless_allowed(tmp_path):
    t = make_trainer(callbacks=[ScaleCB()])
    t.model[0].requires_grad_(False)  # the first layer frozen, as freeze() does with a splitter
    t.fit(1, lr=0.1, callbacks=[CheckpointCB(tmp_path)])
    unfrozen = make_trainer(callbacks=[ScaleCB()])
    before = [p.detach().clone() for p in unfrozen.model.parameters()]
    with pytest.raises(CheckpointError, match=r"frozen parameters \(requires_grad=False\): saved 2, now 0; frozen "
                                              r"then, training now: 0\.bias, 0\.weight.*allow_changes=\('frozen',\)"):
        unfrozen.fit(1, lr=0.1, resume_from=tmp_path)
    assert all(torch.equal(a, b) for a, b in zip(before, unfrozen.model.parameters()))  # nothing changed
    unfrozen.fit(1, lr=0.1, resume_from=tmp_path, allow_changes=("frozen",))  # meant: accepted


def test_a_schedule_sized_by_the_fit_refuses_a_resume_of_another_length(tmp_path):
    from AIsaac.all import OneCycleSchedulerCB
    make_trainer(callbacks=[OneCycleSchedulerCB()]).fit(2, lr=0.1, callbacks=[CheckpointCB(tmp_path)])
    longer = make_trainer(callbacks=[OneCycleSchedulerCB()])
    with pytest.raises(CheckpointError, match=r"length changed \(n_epochs: saved 2, now 3\), but OneCycleSchedulerCB "
                                              r"spread its schedule over the saved length.*Nothing was changed"):
        longer.fit(3, lr=0.1, resume_from=tmp_path, allow_changes=("n_epochs",))
    plain = make_trainer(callbacks=[ScaleCB()])
    plain.fit(2, lr=0.1, callbacks=[CheckpointCB(tmp_path / "plain")])
    make_trainer(callbacks=[ScaleCB()]).fit(3, lr=0.1, resume_from=tmp_path / "plain", allow_changes=("n_epochs",))


def test_a_callback_whose_state_keys_changed_is_named_with_the_keys(saved):
    class ScaleCB2(ScaleCB):  # the same callback, a later version that renamed its state
        def state_dict(self): return {"factor": self.scale}
        def load_state_dict(self, state): self.scale = state["factor"]
    ScaleCB2.__name__ = "ScaleCB"
    with pytest.raises(CheckpointError, match=r"holds ScaleCB's state with keys 'scale', but this ScaleCB keeps "
                                              r"'factor'.*Nothing was changed"):
        make_trainer(callbacks=[ScaleCB2()]).fit(1, lr=0.1, resume_from=saved)

    class DuringFit(ScaleCB):  # whose state exists only once a fit runs: found as it loads
        def state_dict(self): return {"factor": self.factor}
        def load_state_dict(self, state): self.factor = state["factor"]
    DuringFit.__name__ = "ScaleCB"
    with pytest.raises(CheckpointError, match=r"ScaleCB.load_state_dict could not load the state the checkpoint holds "
                                              r"for it \(keys 'scale'\): KeyError: 'factor'"):
        make_trainer(callbacks=[DuringFit()]).fit(1, lr=0.1, resume_from=saved)
