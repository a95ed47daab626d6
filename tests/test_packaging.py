"""The install is honest: every third-party import is declared, `all` covers the feature extras, the version lives
in one place, and the built sdist/wheel carry the license and py.typed but no partial test suite."""
import ast
import re
import sys
import tarfile
import zipfile
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

import AIsaac

tomllib = pytest.importorskip("tomllib")  # Python 3.11+
ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
# Imported only where the environment already provides them, so no extra declares them.
PROVIDED = {"IPython": "imported only inside a running notebook, where Jupyter brings it"}
FEATURE_EXTRAS = ("hf", "demo", "timm", "inspect", "tensorboard", "distributed", "trackers")


def dist_name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def third_party_imports() -> set[str]:
    found = set()
    for path in (ROOT / "AIsaac").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import): found |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0: found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"AIsaac"} - set(PROVIDED)


def test_every_third_party_import_is_declared():
    project = PYPROJECT["project"]
    declared = {dist_name(r) for r in project["dependencies"]}
    declared |= {dist_name(r) for name in FEATURE_EXTRAS for r in project["optional-dependencies"][name]}
    dists = packages_distributions()
    undeclared = {m: dists.get(m) for m in third_party_imports()
                  if not {d.lower() for d in dists.get(m, [m])} & declared}
    assert not undeclared, f"imported by AIsaac but declared neither in dependencies nor in an extra: {undeclared}"


def test_all_extra_is_the_union_of_the_feature_extras():
    extras = PYPROJECT["project"]["optional-dependencies"]
    union = {dist_name(r) for name in FEATURE_EXTRAS for r in extras[name]}
    assert {dist_name(r) for r in extras["all"]} == union
    assert {"datasets", "fastcore"} & {dist_name(r) for r in PYPROJECT["project"]["dependencies"]} == set()


def test_version_is_written_once():
    assert "version" in PYPROJECT["project"]["dynamic"] and "version" not in PYPROJECT["project"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "AIsaac.__version__"}


def test_sdist_has_no_tests_and_the_wheel_is_typed_and_licensed(tmp_path, monkeypatch):
    build_meta = pytest.importorskip("setuptools.build_meta")
    src = tmp_path / "src"
    import shutil
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".venv", ".git", "*.egg-info", "__pycache__", "build",
                                                              "dist", ".mypy_cache", ".pytest_cache", "site"))
    monkeypatch.chdir(src)
    sdist = tmp_path / build_meta.build_sdist(str(tmp_path))
    wheel = tmp_path / build_meta.build_wheel(str(tmp_path))
    with tarfile.open(sdist) as t: names = t.getnames()
    assert not [n for n in names if "/tests/" in n], "the sdist carries part of the test suite"
    assert any(n.endswith("/LICENSE") for n in names) and any(n.endswith("/AIsaac/py.typed") for n in names)
    with zipfile.ZipFile(wheel) as z:
        assert "AIsaac/py.typed" in z.namelist()
        meta = z.read(f"aisaac-{AIsaac.__version__}.dist-info/METADATA").decode()
    assert f"Version: {AIsaac.__version__}\n" in meta and "License-Expression: Apache-2.0" in meta
    assert "Classifier: Typing :: Typed" in meta
