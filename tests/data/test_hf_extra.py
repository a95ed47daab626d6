"""Without the `hf` extra (datasets, Pillow) the loaders that build a DatasetDict say which extra to install."""
import sys

import pytest

from AIsaac.cli import main
from AIsaac.data.digits import digits_dataset_dict
from AIsaac.data.fashion_mnist import fashion_mnist_dataset_dict

HINT = "pip install 'aisaac[hf]'"


@pytest.mark.parametrize("module", ["datasets", "PIL"])
@pytest.mark.parametrize("load", [fashion_mnist_dataset_dict, digits_dataset_dict])
def test_missing_hf_package_names_the_extra(monkeypatch, module, load):
    monkeypatch.setitem(sys.modules, module, None)  # what `import datasets` meets when it is not installed
    with pytest.raises(ImportError) as e: load()
    assert HINT in str(e.value) and load.__name__ in str(e.value) and f"missing: {module}" in str(e.value)


def test_demo_command_reports_the_extra(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "datasets", None)
    assert main(["demo", "--out", str(tmp_path), "--epochs", "1"]) == 2
    assert HINT in capsys.readouterr().err
