"""The states in a checkpoint: the model's through its wrappers, the optimizer's (one loader, keeping chosen
hyperparameters), the callbacks' with state, and the whole trainer's, compared with plain PyTorch."""
import pytest
import torch
from torch import nn

from AIsaac.all import CheckpointError, model_state, unwrap_model
from AIsaac.runtime.checkpoint_file import FORMAT, checksum
from AIsaac.runtime.model_state import load_model_state, load_opt_state, stateful_callbacks, trainer_state
from tests.helpers.small_fit import ScaleCB, make_trainer


def stepped_sgd():
    """A model and an SGD with momentum after one step, so the optimizer has momentum buffers."""
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(4, 3)).pow(2).sum().backward()
    opt.step()
    return model, opt


@pytest.mark.parametrize("keep,lr,momentum", [((), 0.1, 0.9), (False, 0.1, 0.9), (("lr",), 0.5, 0.9), (True, 0.5, 0.5)])
def test_load_opt_state_loads_torchs_state_and_keeps_the_named_hyperparameters(keep, lr, momentum):
    model, opt = stepped_sgd()
    saved = opt.state_dict()
    mine, plain = (torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.5) for _ in range(2))
    load_opt_state(mine, saved, model, keep)
    plain.load_state_dict(saved)  # by hand: torch's loader takes the saved hyperparameters too
    for p in model.parameters():
        assert torch.equal(mine.state[p]["momentum_buffer"], plain.state[p]["momentum_buffer"])
        assert torch.equal(mine.state[p]["momentum_buffer"], opt.state[p]["momentum_buffer"])
    group = mine.param_groups[0]
    assert (group["lr"], group["momentum"]) == (lr, momentum)
    assert group["params"] == plain.param_groups[0]["params"]


def test_load_opt_state_that_does_not_fit_says_what_to_do():
    model, opt = stepped_sgd()
    two_groups = torch.optim.SGD([{"params": [model.weight]}, {"params": [model.bias]}], lr=0.1)
    with pytest.raises(CheckpointError, match=r"does not fit this optimizer \(.*parameter groups.*\); pass it back"):
        load_opt_state(two_groups, opt.state_dict(), advice="pass it back")


def test_the_model_state_is_the_users_module_without_its_wrappers():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    wrapped = nn.DataParallel(torch.compile(model))
    assert unwrap_model(wrapped) is model and unwrap_model(model) is model
    state = model_state(wrapped)
    assert list(state) == list(model.state_dict())  # no `module.` or `_orig_mod.` prefix
    fresh = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    load_model_state(nn.DataParallel(fresh), state)
    for k, v in fresh.state_dict().items(): assert torch.equal(v, state[k])


def test_trainer_state_holds_everything_a_resume_reads():
    trainer = make_trainer(callbacks=[ScaleCB(3.0)])
    trainer.fit(1, lr=0.1)
    assert list(stateful_callbacks(trainer)) == ["ScaleCB"]
    state = trainer_state(trainer, 1, 0, {"ignored": "at batch 0"})
    assert state["format"] == FORMAT and state["checksum"] == checksum(state)
    assert state["position"] == {"epoch": 1, "batch": 0, "loader_rng": None, "fetch_rng": None, "n_epochs": 1,
                                 "step": 4}  # 16 rows in batches of 4: four optimizer steps
    assert state["callbacks"] == {"ScaleCB": {"scale": 3.0}} and state["processes"] is None
    assert state["setup"] == trainer.setup and state["setup"]["run_id"] == trainer.run_id
    assert list(state["opts"]) == ["opt"] and state["opts"]["opt"] == trainer.opt.state_dict()
    for k, v in trainer.model.state_dict().items(): assert torch.equal(state["model"][k], v)
