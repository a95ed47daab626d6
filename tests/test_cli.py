"""The `aisaac` command: its options reach the demo, errors are one line and exit code 2, --version."""
import pytest

import AIsaac
import AIsaac.data.fashion_mnist as fm
import AIsaac.demo as demo
from AIsaac.cli import main


def test_demo_options_reach_run_demo(monkeypatch):
    calls = []
    monkeypatch.setattr(demo, "run_demo", lambda *a, **kw: calls.append((a, kw)))
    assert main(["demo", "--data", "d", "--out", "o", "--epochs", "2", "--bs", "32", "--lr", "0.01", "--n-train",
                 "300", "--n-test", "50", "--workers", "1"]) == 0
    assert main(["demo"]) == 0
    assert calls == [(("d", "o", 2, 32, 0.01, 300, 1), {"n_test": 50}),
                     ((None, "aisaac_out", 3, 64, 1e-3, None, 0), {"n_test": None})]


def test_demo_with_a_wrong_data_folder_says_what_is_missing_and_exits_2(tmp_path, capsys):
    assert main(["demo", "--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("aisaac demo: No Fashion-MNIST idx files in") and "train-images-idx3-ubyte.gz" in err


def test_version(capsys):
    with pytest.raises(SystemExit) as e: main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"aisaac {AIsaac.__version__}"


def test_demo_n_train_and_n_test_on_digits(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(fm, "DEFAULT_FOLDER", str(tmp_path / "none"))
    monkeypatch.delenv("FASHION_MNIST_DIR", raising=False)
    assert main(["demo", "--epochs", "1", "--n-train", "300", "--n-test", "50", "--out", str(tmp_path / "o")]) == 0
    assert "300 training and 50 test images" in capsys.readouterr().out


@pytest.mark.skipif(fm.fashion_mnist_folder() is None, reason="Fashion-MNIST files not installed (CI installs them)")
def test_demo_n_test_on_fashion_mnist(tmp_path, capsys):
    from AIsaac.demo import load_demo_data
    dd, _ = load_demo_data(None, 500, 200)
    assert (len(dd["train"]), len(dd["test"])) == (500, 200)


@pytest.mark.parametrize("args, says", [(["--epochs", "-1"], "argument --epochs: the value must be a whole number >= 1"),
                                        (["--epochs", "2.5"], "argument --epochs: the value must be a whole number"),
                                        (["--lr", "0"], "argument --lr: the learning rate must be a number > 0"),
                                        (["--lr", "inf"], "argument --lr: the learning rate must be a number > 0"),
                                        (["--bs", "0"], "argument --bs: the value must be a whole number >= 1"),
                                        (["--workers", "-1"], "argument --workers: the value must be a whole number >= 0")])
def test_bad_arguments_are_refused_before_the_data_loads(monkeypatch, capsys, args, says):
    import AIsaac.demo
    monkeypatch.setattr(AIsaac.demo, "load_demo_data", lambda *a: pytest.fail("the data loaded before the check"))
    with pytest.raises(SystemExit) as e: main(["demo", *args])
    assert e.value.code == 2 and says in capsys.readouterr().err


@pytest.mark.parametrize("kw, says", [({"epochs": -1}, "run_demo: epochs must be a whole number >= 1"),
                                      ({"lr": 0.}, "lr must be a number > 0"),
                                      ({"n_test": 0}, "run_demo: n_test must be a whole number >= 1")])
def test_run_demo_checks_its_arguments_before_the_data_loads(monkeypatch, kw, says):
    import AIsaac.demo
    monkeypatch.setattr(AIsaac.demo, "load_demo_data", lambda *a: pytest.fail("the data loaded before the check"))
    with pytest.raises(ValueError, match=says): AIsaac.demo.run_demo(**kw)
