import pytest
import torch
from torch.testing import assert_close

from AIsaac.all import CompileCB


class ModelSeen:
    def before_batch(self, trainer): self.model = trainer.model


def test_compiles_for_the_fit_and_restores(make_trainer, make_model):
    model, ref = make_model(), make_model()
    seen = ModelSeen()
    t = make_trainer([CompileCB(backend="eager"), seen], model=model)
    t.fit(1, lr=0.1)
    assert type(seen.model).__name__ == "OptimizedModule" and seen.model._orig_mod is model
    assert t.model is model and t.CompileCB.compiled
    make_trainer(model=ref).fit(1, lr=0.1)
    for p, q in zip(model.parameters(), ref.parameters()): assert_close(p, q)


def test_falls_back_with_a_warning_when_compile_fails(make_trainer, make_model, monkeypatch):
    def broken(*args, **kwargs): raise RuntimeError("Dynamo is not supported on this Python")
    monkeypatch.setattr(torch, "compile", broken)
    model = make_model()
    seen = ModelSeen()
    t = make_trainer([CompileCB(), seen], model=model)
    with pytest.warns(RuntimeWarning, match="training the model uncompiled"): t.fit(1)
    assert seen.model is model and not t.CompileCB.compiled


def test_falls_back_when_compile_is_missing(make_trainer, monkeypatch):
    monkeypatch.delattr(torch, "compile")
    t = make_trainer([CompileCB()])
    with pytest.warns(RuntimeWarning, match="no torch.compile"): t.fit(1)
