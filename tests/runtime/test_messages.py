"""runtime.messages.warn: a warning raised deep inside the package points at the user's line."""
import inspect
import warnings

import torch
from torch import nn

from AIsaac.all import BasicTrainCB, CancelFitException, CompileCB, DataLoaders, Trainer
from AIsaac.runtime.messages import warn


def test_called_from_user_code_it_points_at_that_line():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warn("from here", RuntimeWarning); line = inspect.currentframe().f_lineno
    assert [(w.filename, w.lineno, w.category) for w in caught] == [(__file__, line, RuntimeWarning)]


class Stop:
    def before_batch(self, trainer): raise CancelFitException()


def test_raised_inside_a_fit_it_points_at_the_users_fit_call(monkeypatch):
    # CompileCB warns from its before_fit, several package frames below this test's fit(...) call.
    monkeypatch.setattr(torch, "compile", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("no compiler here")))
    x, y = torch.randn(8, 3), torch.randint(0, 2, (8,))
    trainer = Trainer(DataLoaders.from_tensors((x, y), (x, y), batch_size=4), nn.CrossEntropyLoss(), torch.optim.SGD,
                      nn.Linear(3, 2), [BasicTrainCB(), CompileCB(), Stop()])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(1); line = inspect.currentframe().f_lineno
    assert [(w.filename, w.lineno) for w in caught if "CompileCB" in str(w.message)] == [(__file__, line)]
