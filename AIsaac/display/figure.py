"""`ShownOnceFigure`: the figure AIsaac's plots return, which a notebook shows once.

A plot method returns its figure (to save it, or draw more on it). In a notebook the inline backend shows every
figure pyplot holds at the end of the cell, and a figure that is the cell's value is shown a second time. This one
leaves pyplot when it is displayed, so whichever comes first shows it and the other does not.
"""
from __future__ import annotations

from typing import Any

from matplotlib.figure import Figure


class ShownOnceFigure(Figure):
    """A matplotlib `Figure` that a notebook shows once, whether it is a cell's value or only drawn by the cell."""

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> None:
        import matplotlib
        import matplotlib.pyplot as plt
        # Displayed now: under the inline backend, pyplot lets it go so that the end of the cell does not show it
        # again. Elsewhere (a terminal IPython with a window backend) the window stays open.
        if "inline" in matplotlib.get_backend(): plt.close(self)
        return None  # IPython then draws the figure with its own formatters (png, svg, retina, as configured)
