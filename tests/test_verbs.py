"""`TrainerVerbs` (AIsaac/verbs.py): every verb is declared on the Trainer with the signature of the tool it calls, so
an IDE shows the real arguments; and each passes them on (a verb called as users call it gives the tool's result)."""
import importlib
import inspect

import pytest
import torch
from torch import nn

from AIsaac.all import BasicTrainCB, MetricsCB, Trainer
from AIsaac.verbs import TrainerVerbs

# Each verb and the function in AIsaac.tools that does its work.
TOOLS = {"get_preds": "predict", "predict": "predict", "validate": "persist", "save": "persist", "load": "persist",
         "export": "persist", "lr_find": "lr_find", "profile": "profiling", "summarize_callbacks": "summarize",
         "summarize_model": "summarize", "show_image_batch": "show_batch"}


def public(cls): return sorted(n for n, v in vars(cls).items() if callable(v) and not n.startswith("_"))


def test_every_verb_is_a_tool_or_freezing_and_the_trainer_has_them_all():
    assert public(TrainerVerbs) == sorted([*TOOLS, "freeze", "freeze_to", "unfreeze"])
    assert issubclass(Trainer, TrainerVerbs)
    for name in public(TrainerVerbs):
        assert getattr(Trainer, name) is getattr(TrainerVerbs, name)
        assert f"`{name}`" in Trainer.__doc__, f"Trainer's docstring does not name {name}"


@pytest.mark.parametrize("verb", sorted(TOOLS))
def test_a_verb_takes_exactly_its_tools_arguments_with_the_same_defaults(verb):
    tool = getattr(importlib.import_module(f"AIsaac.tools.{TOOLS[verb]}"), verb)
    mine = list(inspect.signature(getattr(TrainerVerbs, verb)).parameters.values())[1:]  # without self
    theirs = list(inspect.signature(tool).parameters.values())[1:]  # without trainer
    assert [(p.name, p.kind, p.default) for p in mine] == [(p.name, p.kind, p.default) for p in theirs]


def test_verbs_called_on_a_trainer_give_what_the_model_gives_by_hand(tiny_dls, tiny_model, tmp_path):
    t = Trainer(tiny_dls, nn.CrossEntropyLoss(), torch.optim.SGD, tiny_model, [BasicTrainCB(), MetricsCB()])
    t.fit(1, lr=0.1)
    x, y = tiny_dls.valid.dataset.tensors
    with torch.no_grad(): hand = tiny_model(x)
    preds, targets = t.get_preds()
    torch.testing.assert_close(preds, hand)
    assert torch.equal(targets, y)
    torch.testing.assert_close(t.predict(x[:3]), hand[:3])
    assert t.validate()["valid"] == pytest.approx(nn.functional.cross_entropy(hand, y).item(), rel=1e-5)
    path = t.save(tmp_path / "model.pth")
    with torch.no_grad(): tiny_model.weight.zero_()
    assert t.load(path) is t
    torch.testing.assert_close(t.predict(x[:3]), hand[:3])  # the saved weights are back
