"""AIsaac: a PyTorch trainer in which the whole training loop is callbacks.

`from AIsaac import Trainer, MetricsCB` reaches every name of AIsaac.all. They are read from it when first asked for,
so `import AIsaac` (and `aisaac --version`) stays as cheap as Python's own startup; type checkers see them all below.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .all import *  # noqa: F403  (re-exported: a star import is, for type checkers)
else:
    def __getattr__(name: str) -> Any:
        # Only reached for a name not yet in this module: a name of AIsaac.all (kept here once read), or `__all__`.
        if name.startswith("__") and name != "__all__": raise AttributeError(name)
        import AIsaac.all as exports  # (`from . import all` would ask this very function for `all` first)
        names = ["__version__", *exports.__all__]
        if name == "__all__": return names
        if name in names: value = globals()[name] = getattr(exports, name)
        elif name in globals(): value = globals()[name]  # a submodule, imported on the way
        else: raise AttributeError(f"module 'AIsaac' has no attribute '{name}'")
        return value

    def __dir__() -> list[str]:
        import AIsaac.all as exports
        return sorted({*globals(), *exports.__all__})
