"""The `aisaac` command: its options reach the demo, errors are one line and exit code 2, --version."""
import pytest

import AIsaac
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
