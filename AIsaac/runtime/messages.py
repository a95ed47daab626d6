"""`logger`, the "AIsaac" logger every library message goes through, and `inform`, which logs on the main process only.

Messages are `logging` records, so they can be silenced (`logging.getLogger("AIsaac").setLevel(logging.WARNING)`),
redirected or captured. Until the application configures logging (the root logger has no handler), a default handler
writes them to stderr as plain lines; once it does, they go to its handlers instead, never twice.
"""
from __future__ import annotations

import logging
import sys
from typing import Any

logger = logging.getLogger("AIsaac")


class _UntilConfigured(logging.StreamHandler):
    """Writes to the current `sys.stderr` while the root logger has no handler of its own."""

    def __init__(self): super().__init__()

    @property
    def stream(self): return sys.stderr  # the stream at the time of the message (pytest and notebooks swap it)

    @stream.setter
    def stream(self, value): pass

    def filter(self, record: logging.LogRecord) -> bool:
        return not logging.getLogger().handlers and super().filter(record)


if not any(isinstance(h, _UntilConfigured) for h in logger.handlers):
    _handler = _UntilConfigured()
    _handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(_handler)
if logger.level == logging.NOTSET: logger.setLevel(logging.INFO)


def inform(trainer: Any, message: str, level: int = logging.INFO) -> None:
    """Log `message` on the "AIsaac" logger, from the main process only (every process would say the same)."""
    if getattr(trainer, "is_main_process", True): logger.log(level, message)
