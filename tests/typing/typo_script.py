"""A user's script with misspelt Trainer names: tests/test_typing.py checks mypy and pyright report each line marked
`# typo`, and nothing else (never run; not in pyproject.toml's mypy files, which must stay clean)."""
from __future__ import annotations

from AIsaac import Trainerr  # noqa: F401  # typo
from AIsaac.all import *


def misspelt(trainer: Trainer) -> None:
    trainer.fitt(1)  # typo
    trainer.MetricCB.reset()  # typo
    print(trainer.epoc)  # typo


def spelt_right(trainer: Trainer) -> None:
    trainer.fit(1)
    metrics: MetricsCB = trainer.MetricsCB  # a callback AIsaac ships, typed as its class
    progress: ProgressCB = trainer.callback(ProgressCB)  # any callback class, a user's too
    print(metrics, progress, trainer.epoch)


def predictions(trainer: Trainer) -> None:
    preds, targets = trainer.get_preds()
    found: Predictions = trainer.get_preds()
    print(preds.shape, targets.shape, found.preds.argmax(1), found.targag)  # typo
