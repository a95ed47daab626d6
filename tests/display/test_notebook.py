"""in_notebook: True only in a Jupyter kernel, so output is HTML there and plain text in a terminal or IPython."""
import sys
import types

import pytest

from AIsaac.display.notebook import in_notebook


def shell_module(shell):
    module = types.ModuleType("IPython")
    module.get_ipython = lambda: shell
    return module


def test_plain_python_is_not_a_notebook(monkeypatch):
    monkeypatch.delitem(sys.modules, "IPython", raising=False)
    assert in_notebook() is False
    assert "IPython" not in sys.modules  # answered without importing IPython


# The front ends that run a kernel (Jupyter, JupyterLab, VS Code, Colab) are told apart by capability, below.

import IPython
import IPython.display
import torch
from torch import nn

from AIsaac.all import Accuracy, BasicTrainCB, DataLoaders, MetricsCB, ProgressCB, Trainer


class Kernel:
    """Stands for ipykernel's kernel, which sends the shell's outputs to the front end."""


# Stand-ins for each shell, named and nested as the real ones are.
class ZMQInteractiveShell:  # ipykernel's: classic Jupyter, JupyterLab, VS Code and Binder run it as it is
    __module__ = "ipykernel.zmqshell"
    def __init__(self): self.kernel = Kernel()


class Shell(ZMQInteractiveShell):  # Colab's subclass
    __module__ = "google.colab._shell"


class VSCodeShell(ZMQInteractiveShell):  # what a front end of its own might call its subclass
    __module__ = "some_ide.kernel"


class TerminalInteractiveShell:  # the `ipython` command in a terminal: no kernel, text only
    __module__ = "IPython.terminal.interactiveshell"


FRONT_ENDS = {"jupyter": ZMQInteractiveShell, "jupyterlab": ZMQInteractiveShell, "vscode": VSCodeShell,
              "colab": Shell}


@pytest.mark.parametrize("front_end", FRONT_ENDS)
def test_kernel_front_ends_are_notebooks(monkeypatch, front_end):
    monkeypatch.setattr(IPython, "get_ipython", lambda: FRONT_ENDS[front_end]())
    assert in_notebook()


def test_terminal_ipython_plain_python_and_no_ipython_are_not(monkeypatch):
    monkeypatch.setattr(IPython, "get_ipython", TerminalInteractiveShell)
    assert not in_notebook()
    monkeypatch.setattr(IPython, "get_ipython", lambda: None)
    assert not in_notebook()
    monkeypatch.delitem(sys.modules, "IPython")
    assert not in_notebook()


@pytest.mark.parametrize("front_end", ["colab", "vscode"])
def test_progress_draws_html_bars_under_a_subclassed_shell(monkeypatch, front_end):
    shown = []

    class Handle:
        def __init__(self, bundle): self.i = len(shown); shown.append(bundle)
        def update(self, bundle, raw=False): shown[self.i] = bundle

    monkeypatch.setattr(IPython, "get_ipython", lambda: FRONT_ENDS[front_end]())
    monkeypatch.setattr(IPython.display, "display", lambda bundle, raw, display_id: Handle(bundle))
    x, y = torch.randn(32, 4), torch.randint(0, 2, (32,))
    dls = DataLoaders.from_tensors((x, y), (x, y), batch_size=8)
    Trainer(dls, nn.CrossEntropyLoss(), torch.optim.SGD, nn.Linear(4, 2),
            callbacks=[BasicTrainCB(), MetricsCB(Accuracy=Accuracy()), ProgressCB()]).fit(1)
    assert "<progress value='1' max='1'" in shown[0]["text/html"]
    assert shown[-1]["text/html"].startswith("<table")
