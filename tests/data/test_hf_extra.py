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


@pytest.mark.parametrize("module", ["datasets", "PIL"])
def test_demo_command_names_the_demo_extra_before_the_data_loads(monkeypatch, capsys, tmp_path, module):
    import AIsaac.demo
    monkeypatch.setitem(sys.modules, module, None)
    monkeypatch.setattr(AIsaac.demo, "load_demo_data", lambda *a: pytest.fail("the data loaded before the check"))
    assert main(["demo", "--out", str(tmp_path), "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert "aisaac demo" in err and "pip install 'aisaac[demo]'" in err and f"missing: {module}" in err


def test_datasets_imported_in_a_kernel_without_ipywidgets_gives_no_tqdm_warning():
    """The library's own import of datasets (tqdm.auto inside) puts no IProgress warning in a notebook's first cell."""
    pytest.importorskip("ipykernel")
    import subprocess
    code = """if True:
        import sys, warnings
        import ipykernel.zmqshell  # what tqdm.auto looks for to decide it runs in a notebook
        sys.modules["ipywidgets"] = None  # not installed
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            from AIsaac.data.fashion_mnist import hf_modules
            hf_modules("test")
        assert "tqdm.auto" in sys.modules, "datasets no longer imports tqdm.auto: this test checks nothing"
        print([str(w.message) for w in caught if "IProgress" in str(w.message)])
    """
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"
