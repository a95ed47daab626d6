import os
from pathlib import Path

import pytest

from AIsaac.data.fashion_mnist import DEFAULT_FOLDER

ROOT = Path(__file__).resolve().parents[2]
# Small enough that the notebooks and examples run in about a minute on a CPU, large enough for real batches.
SMALL_N_TRAIN = 512



@pytest.fixture
def docs_env(monkeypatch):
    """Environment for a kernel or a script: this checkout's AIsaac first on the path, and a small data subset.

    Skips when the Fashion-MNIST files are missing (the notebooks and examples train on them).
    """
    if not Path(os.environ.get("FASHION_MNIST_DIR", DEFAULT_FOLDER)).is_dir():
        pytest.skip("Fashion-MNIST idx files missing (apt-get install dataset-fashion-mnist, or set FASHION_MNIST_DIR)")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    monkeypatch.setenv("AISAAC_DOCS_N_TRAIN", str(SMALL_N_TRAIN))
    # The kernel must draw inline, as in Jupyter: the test suite's own Agg backend must not reach it.
    monkeypatch.delenv("MPLBACKEND", raising=False)
    return dict(os.environ)
