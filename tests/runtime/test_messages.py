"""Library messages (AIsaac/runtime/messages.py): `inform` logs on the "AIsaac" logger, at the level given, on the main
process only; unconfigured, they go to stderr once, and once logging is configured, to its handlers only."""
import logging
import subprocess
import sys
import types
"""runtime.messages.warn: a warning raised deep inside the package points at the user's line."""
import inspect
import warnings

import torch
from torch import nn

from AIsaac.all import BasicTrainCB, Callback, Trainer
from AIsaac.runtime.messages import inform, logger


def process(main): return types.SimpleNamespace(is_main_process=main)


def test_inform_logs_on_the_main_process_at_the_given_level(caplog):
    with caplog.at_level(logging.DEBUG, logger="AIsaac"):
        inform(process(True), "saved checkpoint")
        inform(process(True), "slow loader", level=logging.WARNING)
        inform(process(False), "every process would say this")
        inform(object(), "no distributed state: one process")
    assert [(r.name, r.levelno, r.getMessage()) for r in caplog.records] == [
        ("AIsaac", logging.INFO, "saved checkpoint"), ("AIsaac", logging.WARNING, "slow loader"),
        ("AIsaac", logging.INFO, "no distributed state: one process")]
    assert logger is logging.getLogger("AIsaac")


def test_the_logger_level_silences_library_messages(caplog):
    with caplog.at_level(logging.WARNING, logger="AIsaac"):
        inform(process(True), "quiet")
        inform(process(True), "loud", level=logging.ERROR)
    assert [r.getMessage() for r in caplog.records] == ["loud"]


class Says(Callback):
    def after_epoch(self, trainer):
        inform(trainer, f"{'train' if trainer.training else 'valid'} {trainer.epoch} done", level=logging.WARNING)


def test_a_callback_on_a_process_that_is_not_the_main_one_says_nothing(tiny_dls, tiny_model, caplog):
    t = Trainer(tiny_dls, nn.CrossEntropyLoss(), torch.optim.SGD, tiny_model, [BasicTrainCB(), Says()])
    with caplog.at_level(logging.INFO, logger="AIsaac"):
        t.fit(1, lr=0.1)
        t.is_main_process = False  # as AccelerateCB sets it on the other processes
        t.fit(1, lr=0.1)
    assert [r.getMessage() for r in caplog.records if r.name == "AIsaac"] == ["train 0 done", "valid 0 done"]


SCRIPT = """
import logging, sys
from AIsaac.runtime.messages import inform
inform(None, "before any configuration")
logging.basicConfig(stream=sys.stdout, format="root %(levelname)s %(message)s")
inform(None, "after basicConfig", level=logging.WARNING)
"""


def test_messages_go_to_stderr_until_logging_is_configured_then_to_its_handlers_only():
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "before any configuration\n"  # a plain line, and not repeated after configuration
    assert done.stdout == "root WARNING after basicConfig\n"
from AIsaac.all import CancelFitException, CompileCB, DataLoaders
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


# ---- the warnings about a user's callback or argument point at the user's line, whatever the depth ----
class Tracer(Callback):
    """Does the `predict` phase beside BasicTrainCB, without `observes`: the step phase runs twice."""
    def predict(self, trainer): trainer.preds = trainer.model(*trainer.xb)


class Misspelt(Callback):
    def after_bach(self, trainer): pass


def trainer_args(callbacks=()):
    x, y = torch.randn(8, 3), torch.randint(0, 2, (8,))
    return (DataLoaders.from_tensors((x, y), (x, y), batch_size=4), nn.CrossEntropyLoss(), torch.optim.SGD,
            nn.Linear(3, 2), list(callbacks))


def caught_at(call, match: str) -> list[tuple[str, int]]:
    """Where each warning whose message contains `match` points, `call()` being run from this file."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        call()
    return [(w.filename, w.lineno) for w in caught if match in str(w.message)]


def here() -> int: return inspect.currentframe().f_back.f_lineno


def test_a_step_phase_done_twice_is_reported_at_the_users_trainer_or_add_callbacks_line():
    args = trainer_args([BasicTrainCB(), Tracer()])
    assert caught_at(lambda: Trainer(*args), "runs 2 times per batch") == [(__file__, here())]
    trainer = Trainer(*trainer_args([BasicTrainCB()]))
    assert caught_at(lambda: trainer.add_callbacks(Tracer()), "runs 2 times per batch") == [(__file__, here())]
    trainer = Trainer(*trainer_args([BasicTrainCB()]))
    assert caught_at(lambda: trainer.fit(1, callbacks=[Tracer(), Stop()]), "runs 2 times") == [(__file__, here())]


def test_a_misspelt_event_is_reported_at_the_users_line_from_the_trainer_add_callbacks_and_fit():
    args = trainer_args([Misspelt()])
    assert caught_at(lambda: Trainer(*args), "after_bach") == [(__file__, here())]
    trainer = Trainer(*trainer_args([BasicTrainCB()]))
    assert caught_at(lambda: trainer.add_callbacks(Misspelt()), "after_bach") == [(__file__, here())]
    trainer = Trainer(*trainer_args([BasicTrainCB()]))
    assert caught_at(lambda: trainer.fit(1, callbacks=[Misspelt(), Stop()]), "after_bach") == [(__file__, here())]
