import warnings

import pytest
import torch
from torch.testing import assert_close

from AIsaac.all import ActivationStatsCB, CancelFitException, CompileCB


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


class StopAtFirstBatch:
    """The warning comes at before_fit; nothing needs compiling after it."""
    def before_batch(self, trainer): raise CancelFitException()


def test_warns_at_the_users_line_when_hooks_will_force_recompiles(make_trainer):
    t = make_trainer([CompileCB(backend="eager"), ActivationStatsCB(), StopAtFirstBatch()])
    with pytest.warns(RuntimeWarning, match=r"CompileCB: ActivationStatsCB \(forward hooks.*recompiles") as w:
        t.fit(1)
    assert [r.filename for r in w if "CompileCB" in str(r.message)] == [__file__]  # this line, not the library's


def test_warns_about_hooks_put_on_the_model_by_hand(make_trainer, make_model):
    model = make_model()
    handle = model[0].register_forward_hook(lambda m, i, o: None)
    try:
        with pytest.warns(RuntimeWarning, match="forward hooks already on 0"):
            make_trainer([CompileCB(backend="eager"), StopAtFirstBatch()], model=model).fit(1)
    finally: handle.remove()


def test_no_hook_warning_without_hooks(make_trainer):
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        make_trainer([CompileCB(backend="eager"), StopAtFirstBatch()]).fit(1)
