"""A user's script (tests/typing/user_script.py), as CI checks it: the type checker's verdict on it and on the
package, and the script run for real, its results read against the data it trained on; misspelt Trainer names
(tests/typing/typo_script.py) are errors for mypy and pyright, the callbacks AIsaac ships typed as their class."""
import ast
import csv
import inspect
import re
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tests" / "typing" / "user_script.py"
TYPOS = ROOT / "tests" / "typing" / "typo_script.py"
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), str(ROOT)])),
       "MPLBACKEND": "Agg"}


def test_mypy_is_clean_on_the_package_and_a_user_script():
    pytest.importorskip("mypy")
    # Files and settings come from pyproject.toml's [tool.mypy]: the package and tests/typing/user_script.py.
    out = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, env=ENV, capture_output=True, text=True,
                         timeout=900)
    report = out.stdout + out.stderr
    assert out.returncode == 0, f"mypy found problems:\n{report}"
    assert "Success: no issues found" in report, report


def typo_lines() -> list[int]:
    return [i for i, line in enumerate(TYPOS.read_text().splitlines(), 1) if line.endswith("# typo")]


def test_mypy_reports_each_misspelt_trainer_name_and_nothing_else():
    pytest.importorskip("mypy")
    out = subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"), str(TYPOS)],
                         cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=900)
    report = out.stdout + out.stderr
    errors = [int(n) for n in re.findall(r"typo_script\.py:(\d+): error:", report)]
    assert errors == typo_lines() and len(errors) == 5, report
    for name in ("fitt", "MetricCB", "epoc"): assert f'"Trainer" has no attribute "{name}"' in report, report
    assert 'Module "AIsaac" has no attribute "Trainerr"' in report, report  # `from AIsaac import ...` is typed
    assert '"Predictions" has no attribute "targag"' in report, report  # get_preds' result is typed


def pyright(*files: Path) -> str:
    pytest.importorskip("pyright")
    out = subprocess.run([sys.executable, "-m", "pyright", "--pythonpath", sys.executable, *map(str, files)],
                         cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=900)
    return out.stdout + out.stderr


def test_pyright_reports_each_misspelt_trainer_name_and_is_clean_on_the_user_script():
    report = pyright(TYPOS, SCRIPT)
    errors = [int(n) for n in re.findall(r"typo_script\.py:(\d+):\d+ - error:", report)]
    assert errors == typo_lines() and len(errors) == 5, report
    for name in ("fitt", "MetricCB", "epoc"): assert f'Cannot access attribute "{name}" for class "Trainer"' in report
    assert '"Trainerr" is unknown import symbol' in report, report
    assert 'Cannot access attribute "targag" for class "Predictions"' in report, report
    assert "user_script.py:" not in report, report  # no error, warning or note on the user's script
    assert "5 errors, 0 warnings, 0 informations" in report, report


def test_the_callbacks_aisaac_ships_are_typed_trainer_attributes():
    """CallbackSet declares, for type checkers, one attribute per callback class AIsaac.all exports."""
    import AIsaac.all
    from AIsaac.callback import Callback
    from AIsaac.callback_set import CallbackSet
    shipped = sorted(n for n in AIsaac.all.__all__ if inspect.isclass(getattr(AIsaac.all, n))
                     and getattr(AIsaac.all, n).__module__.startswith("AIsaac.callbacks."))
    assert all(issubclass(getattr(AIsaac.all, n), Callback) or hasattr(getattr(AIsaac.all, n)(), "callbacks")
               for n in shipped)  # each is a callback, or a group of them (CoreCBs)
    cls = next(n for n in ast.parse(inspect.getsource(CallbackSet)).body if isinstance(n, ast.ClassDef))
    block = next(n for n in cls.body if isinstance(n, ast.If) and ast.unparse(n.test) == "TYPE_CHECKING")
    declared = {a.target.id: ast.unparse(a.annotation) for a in block.body if isinstance(a, ast.AnnAssign)}
    assert sorted(declared) == shipped, "declare each new callback in CallbackSet's `if TYPE_CHECKING:` block"
    assert all(annotation == f"_all.{name}" for name, annotation in declared.items())
    assert not hasattr(CallbackSet, "MetricsCB")  # declarations only: at run time `__getattr__` finds them


def test_the_user_script_runs_and_its_results_are_those_of_its_data(tmp_path):
    pytest.importorskip("torchinfo")  # the script calls trainer.summarize_model
    out = subprocess.run([sys.executable, str(SCRIPT)], cwd=tmp_path, env=ENV, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, f"the user script failed:\n{out.stderr[-4000:]}"
    result = json.loads(next(l for l in out.stdout.splitlines() if l.startswith("RESULT "))[len("RESULT "):])
    spec = importlib.util.spec_from_file_location("user_script", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)  # defines the functions; the run itself is under `if __name__ == "__main__"`
    valid_targets = torch.cat([yb for _, yb in script.data().valid])
    assert result["targets"] == valid_targets.tolist()  # get_preds gives the validation targets, in order
    assert result["probs_shape"] == [64, 10] and result["probs_row_sums"] == pytest.approx([1.0] * 64, abs=1e-5)
    # GradAccumCB (removed by the trainer's method), HooksCallback (by name) and the fit-only callbacks are gone.
    assert result["callbacks"] == sorted(["CoreCBs", "DeviceCB", "BasicTrainCB", "MetricsCB", "ProgressCB",
                                          "ActivationStatsCB", "EarlyStoppingCB", "GradClipCB", "CSVLoggerCB",
                                          "CheckpointCB", "SaveBestCB", "TerminateOnNaNCB"])
    # Rows: fit(3)'s three epochs, none from its resume (it had ended), one from profile(1), a fit of its own.
    with open(tmp_path / "log.csv") as f: rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2, 3]
    log = result["epoch_log"]  # the last fit's (profile's): restoring, get_preds and predict put it back or leave it
    assert (float(rows[-1]["train"]), float(rows[-1]["valid"])) == pytest.approx((log["train"], log["valid"]))
    # keep=1 keeps the newest checkpoint of each run: fit(3)'s after epoch 3 (e3), profile's after its epoch (e1).
    assert sorted(p.name.split("-")[1] for p in (tmp_path / "ckpt").glob("*.pt")) == ["e1", "e3"]
