"""`logger`, the "AIsaac" logger every library message goes through; `inform`, which logs on the main process only;
`warn`, a warning shown at the user's line.

Messages are `logging` records, so they can be silenced (`logging.getLogger("AIsaac").setLevel(logging.WARNING)`),
redirected or captured. Until the application configures logging (the root logger has no handler), a default handler
writes them to stderr as plain lines; once it does, they go to its handlers instead, never twice.
"""
from __future__ import annotations

import logging
import os
import sys
import warnings
from types import FrameType
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


_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep  # .../AIsaac/


def warn(message: str, category: type[Warning] = UserWarning) -> None:
    """`warnings.warn` pointing at the user's code: the innermost caller outside the AIsaac package (the user's
    `Trainer(...)` or `fit(...)` line, or the user's callback), however deep in the package the warning is raised.

    A fixed `stacklevel` is right for one call path only; Python 3.12's `skip_file_prefixes` does the same walk.
    """
    frame: FrameType | None = sys._getframe(1)
    level = 2  # warn's caller
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level if frame is not None else 2)
