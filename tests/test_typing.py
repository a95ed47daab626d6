"""The type checker's verdict on the package and on a user's script (tests/typing/user_script.py), as CI runs it."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_mypy_is_clean_on_the_package_and_a_user_script():
    pytest.importorskip("mypy")
    # Files and settings come from pyproject.toml's [tool.mypy]: the package and tests/typing/user_script.py.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=900)
    report = out.stdout + out.stderr
    assert out.returncode == 0, f"mypy found problems:\n{report}"
    assert "Success: no issues found" in report, report
