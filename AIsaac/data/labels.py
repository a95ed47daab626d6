"""`class_names` (a loader's label names, from a Hugging Face `ClassLabel` feature) and `label_titles` (labels as
titles for a grid of images)."""
from __future__ import annotations

from typing import Any, Sequence

import torch



def class_names(dl: Any) -> list[str] | None:
    """The class names of a loader's labels (a Hugging Face `ClassLabel` feature's `.names`), or None."""
    features = getattr(getattr(dl, "dataset", None), "features", None)
    if not features: return None
    keys = getattr(getattr(dl, "collate_fn", None), "keys", None)
    # A collate that names its batch positions (DictCollate's `keys`) puts the label at position 1; otherwise take
    # the first ClassLabel feature there is.
    candidates = [keys[1]] if isinstance(keys, (list, tuple)) and len(keys) > 1 else list(features)
    for k in candidates:
        names = getattr(features.get(k), "names", None)
        if names: return list(names)
    return None


def label_titles(labels: Any, names: Sequence[str] | None, n: int) -> list[str] | None:
    """Titles for the first `n` labels: class names when known, else the label numbers; None for non-scalar labels."""
    if labels is None: return None
    labels = torch.as_tensor(labels).detach().cpu()[:n]
    if labels.ndim != 1: return None
    if names is not None and not labels.is_floating_point() and all(0 <= int(v) < len(names) for v in labels):
        return [names[int(v)] for v in labels]
    return [f"{v:g}" if isinstance(v, float) else str(v) for v in labels.tolist()]
