"""Library messages (AIsaac/runtime/messages.py): `inform` logs on the "AIsaac" logger, at the level given, on the main
process only; unconfigured, they go to stderr once, and once logging is configured, to its handlers only."""
import logging
import subprocess
import sys
import types

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
