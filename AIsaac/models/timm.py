"""`get_model_timm`: any model from the `timm` library (an optional extra: `pip install aisaac[timm]`)."""
from __future__ import annotations

from typing import Any

from torch import nn


def get_model_timm(name: str, pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """`timm.create_model(name, pretrained, **kwargs)`, e.g. `get_model_timm('resnet18', in_chans=1, num_classes=10)`.

    `pretrained=False` (the default) builds random weights and needs no network; `True` downloads them.
    """
    try:
        import timm
    except ImportError as e:
        raise ImportError("get_model_timm needs the timm package: pip install timm (or pip install 'aisaac[timm]').") from e
    try:
        return timm.create_model(name, pretrained=pretrained, **kwargs)
    except RuntimeError as e:
        if "Unknown model" not in str(e): raise
        close = timm.list_models(f"*{name.split('.')[0][:6]}*")[:8]
        raise ValueError(f"timm has no model named '{name}'" + (f"; similar names: {', '.join(close)}" if close else "")
                         + ". See timm.list_models('*pattern*').") from e
