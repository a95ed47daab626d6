"""`Mean` and `Accuracy`: `update/compute/reset` metric objects that keep their state on the device of their inputs
(torcheval's and torchmetrics' metrics fit the same protocol)."""
from __future__ import annotations

import torch


class Mean:
    """Weighted mean of scalars; the running sum stays on the values' device, so `update` never syncs."""

    def __init__(self): self.reset()

    def reset(self) -> None:
        self.total: torch.Tensor | None = None
        self.weight = 0.0

    def update(self, value: torch.Tensor | float, weight: float = 1.0) -> "Mean":
        value = value.detach().float() if isinstance(value, torch.Tensor) else torch.tensor(float(value))
        term = value * weight if value.ndim == 0 else (value * weight).sum()
        self.total = term if self.total is None else self.total + term
        self.weight += float(weight) if value.ndim == 0 else float(weight) * value.numel()
        return self

    def compute(self) -> torch.Tensor:
        """The mean so far (NaN when nothing was added)."""
        if self.total is None or self.weight == 0: return torch.tensor(float("nan"))
        return self.total / self.weight


class Accuracy:
    """Fraction of rows whose arg-max prediction equals the target (dependency-free; torcheval's works too)."""

    def __init__(self): self.reset()

    def reset(self) -> None:
        self.correct: torch.Tensor | None = None
        self.count = 0

    def update(self, preds: torch.Tensor, targets: torch.Tensor) -> "Accuracy":
        hits = (preds.argmax(dim=-1) == targets).sum()
        self.correct = hits if self.correct is None else self.correct + hits
        self.count += targets.numel()
        return self

    def compute(self) -> torch.Tensor:
        if self.correct is None or self.count == 0: return torch.tensor(float("nan"))
        return self.correct.float() / self.count
