"""The install is honest: every third-party import is declared, every extra an error names exists and installs what
was missing, `all` covers the feature extras and what the docs import, the version lives in one place, the PyPI page
works off GitHub (absolute links, `pip install` first), and the built sdist/wheel carry the license and py.typed but
no partial test suite."""
import ast
import functools
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
FEATURE_EXTRAS = ("hf", "demo", "timm", "inspect", "tensorboard", "distributed", "safetensors", "mlflow", "wandb",
                  "optuna", "trackers")
EXTRAS = PYPROJECT["project"]["optional-dependencies"]
README = (ROOT / "README.md").read_text()


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
    dists = installed()
    undeclared = {m: dists.get(m) for m in third_party_imports()
                  if not {d.lower() for d in dists.get(m, [m])} & declared}
    assert not undeclared, f"imported by AIsaac but declared neither in dependencies nor in an extra: {undeclared}"


def extra_dists(name: str) -> set[str]:
    return {dist_name(r) for r in EXTRAS[name]}


@functools.cache
def installed() -> dict[str, list[str]]:
    return packages_distributions()  # reads every installed distribution's file list: seconds, so once


def module_dists(module: str) -> set[str]:
    """The distributions that provide the top-level `module` (its own name when it is not installed)."""
    return {dist_name(d) for d in installed().get(module, [module])}


def test_all_is_the_feature_extras_and_the_tutorials():
    assert extra_dists("all") == set().union(*(extra_dists(n) for n in (*FEATURE_EXTRAS, "tutorials")))
    assert {"datasets", "fastcore"} & {dist_name(r) for r in PYPROJECT["project"]["dependencies"]} == set()


def test_trackers_are_one_extra_each_and_trackers_keeps_the_three():
    for name in ("mlflow", "wandb", "optuna"): assert extra_dists(name) == {name}
    assert extra_dists("trackers") == {"mlflow", "wandb", "optuna"}


def imports_in(code: str) -> set[str]:
    try: tree = ast.parse(code)
    except SyntaxError: return set()  # a fragment with `...` or a notebook's shell line
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import): found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0: found.add(node.module.split(".")[0])
    return found


def docs_imports() -> dict[str, str]:
    """Third-party top-level modules imported by the notebooks, the guides' and README's Python blocks and the
    examples, each with one place that imports it."""
    import json
    sources = [(p.name, "".join(c["source"])) for p in sorted((ROOT / "docs").glob("*.ipynb"))
               for c in json.loads(p.read_text())["cells"] if c["cell_type"] == "code"]
    sources += [(p.name, block) for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
                for block in re.findall(r"```python\n(.*?)```", p.read_text(), re.S)]
    sources += [(p.name, p.read_text()) for p in sorted((ROOT / "examples").glob("*.py"))]
    local = {p.stem for p in (ROOT / "examples").glob("*.py")} | {"AIsaac"}
    found: dict[str, str] = {}
    for where, code in sources:
        for m in imports_in(code) - set(sys.stdlib_module_names) - local: found.setdefault(m, where)
    return found


def test_all_installs_everything_the_docs_import():
    base = {dist_name(r) for r in PYPROJECT["project"]["dependencies"]}
    imported = docs_imports()
    assert {"torchvision", "torchmetrics", "transformers"} <= set(imported)  # what this test is about is still there
    missing = {m: where for m, where in imported.items() if not module_dists(m) & (base | extra_dists("all"))}
    assert not missing, f"imported by the docs but installed by neither the base install nor aisaac[all]: {missing}"


def named_extras(text: str) -> set[str]:
    """The extras `text` tells the user to install: `aisaac[a,b]`, and `extra="a"` handed to (or the default of) an
    error helper."""
    names = {n.strip() for group in re.findall(r"aisaac\[([\w, -]+)\]", text) for n in group.split(",")}
    return names | set(re.findall(r"\bextra(?:: str)? ?= ?[\"'](\w+)[\"']", text))


def test_every_extra_the_package_names_exists():
    named = {n: p.relative_to(ROOT) for p in (ROOT / "AIsaac").rglob("*.py") for n in named_extras(p.read_text())}
    assert {"hf", "demo", "mlflow", "distributed"} <= set(named)  # the search still finds them
    unknown = {n: str(p) for n, p in named.items() if n not in EXTRAS}
    assert not unknown, f"errors name extras that pyproject.toml does not define: {unknown}"
    docs = {n for p in [ROOT / "README.md", ROOT / "pypi.md", *(ROOT / "docs").glob("*.md")]
            for n in named_extras(p.read_text())} - {"name"}  # installation.md's `aisaac[name]` placeholder
    assert docs <= set(EXTRAS), f"the docs name extras that do not exist: {docs - set(EXTRAS)}"


def missing_extra_errors():
    """(module made missing, what raises the ImportError), one per lazily imported optional library."""
    import torch
    from torch import nn

    from AIsaac.all import (AccelerateCB, DataLoaders, MLflowLoggerCB, OptunaPruningCB, TensorBoardCB, Trainer,
                            WandbLoggerCB, digits_dataset_dict, fashion_mnist_dataset_dict, get_model_timm)

    def trainer():
        x, y = torch.randn(8, 3), torch.randint(0, 2, (8,))
        return Trainer(DataLoaders.from_tensors((x, y), (x, y), batch_size=4), nn.CrossEntropyLoss(),
                       torch.optim.SGD, nn.Linear(3, 2))
    return [("mlflow", MLflowLoggerCB), ("wandb", WandbLoggerCB), ("optuna", lambda: OptunaPruningCB(None)),
            ("tensorboard", lambda: TensorBoardCB("runs")), ("timm", lambda: get_model_timm("resnet18")),
            ("torchinfo", lambda: trainer().summarize_model(show=False)),
            ("accelerate", lambda: AccelerateCB()._make_accelerator()),
            ("safetensors", lambda: trainer().save("never-written.safetensors", format="safetensors")),
            ("datasets", fashion_mnist_dataset_dict), ("PIL", fashion_mnist_dataset_dict),
            ("sklearn", digits_dataset_dict), ("datasets", lambda: __import__("AIsaac.demo").demo.run_demo())]


@pytest.mark.parametrize("case", range(12))
def test_each_missing_library_error_names_an_extra_that_installs_it(case, monkeypatch, tmp_path):
    module, raise_it = missing_extra_errors()[case]
    monkeypatch.chdir(tmp_path)
    dists = module_dists(module)
    for name in [m for m in sys.modules if m == module or m.startswith(module + ".")] + [module]:
        monkeypatch.setitem(sys.modules, name, None)  # what `import module` meets when it is not installed
    if module == "tensorboard": monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(ImportError) as e: raise_it()
    extras = named_extras(str(e.value))
    assert extras, f"the error names no extra: {e.value}"
    for extra in extras:
        assert extra in EXTRAS and dists & extra_dists(extra), f"aisaac[{extra}] does not install {module}: {e.value}"


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
    assert any(n.endswith("/pypi.md") for n in names)  # the sdist builds the same PyPI page
    with zipfile.ZipFile(wheel) as z:
        assert "AIsaac/py.typed" in z.namelist()
        meta = z.read(f"aisaac-{AIsaac.__version__}.dist-info/METADATA").decode()
    assert f"Version: {AIsaac.__version__}\n" in meta and "License-Expression: Apache-2.0" in meta
    assert "Classifier: Typing :: Typed" in meta
    # The PyPI page: pip's commands first, then the README with the checkout's.
    page = meta.split("\n\n", 1)[1]
    assert "Description-Content-Type: text/markdown" in meta
    assert page.index("pip install aisaac") < page.index("# AIsaac\n") < page.index("bash setup.sh")


def test_readme_opens_with_the_two_commands_of_a_fresh_checkout():
    """CI (.ci/run) and a reader of the repository start from these two lines."""
    assert README.startswith("# AIsaac\n\n```bash\nbash setup.sh && .venv/bin/aisaac demo ")
    assert README.splitlines()[4].startswith(".venv/bin/python -m pytest ")


def test_readme_links_resolve_to_files_of_this_repository():
    """README's links are relative, each to a file of this checkout (GitHub and a checkout resolve them)."""
    inline = re.findall(r"\]\(([^)\s]+)\)", README)
    definitions = dict(re.findall(r"^\[([^\]]+)\]: (\S+)$", README, re.M))
    used = set(re.findall(r"\]\[([^\]]+)\]", README)) | {
        m for m in re.findall(r"(?<![\]`])\[([^\]]+)\](?![(\[:])", README) if m in definitions}
    assert len(inline) + len(definitions) >= 20  # the links are still there to be checked
    assert used <= set(definitions), f"references without a definition: {used - set(definitions)}"
    for target in [*inline, *definitions.values()]:
        assert not target.startswith(("http://", "https://", "/")), f"{target}: link the repository's file, relatively"
        assert (ROOT / target.split("#")[0]).is_file(), f"{target} points at no file of the repository"


def test_project_urls_name_no_file_that_is_not_there():
    """[project.urls] point at the repository and its issues, never at a file of another tree (a /blob/ path)."""
    urls = PYPROJECT["project"]["urls"]
    assert urls and all(u.startswith("https://") and "/blob/" not in u for u in urls.values()), urls


def test_install_commands_tell_the_truth_until_the_package_is_published():
    """No index serves aisaac yet: each install page says so and installs from a checkout or a wheel."""
    for page in (README, (ROOT / "pypi.md").read_text(), (ROOT / "docs" / "installation.md").read_text()):
        assert "not on PyPI yet" in page or "not published on PyPI yet" in page
        assert "pip install ." in page


def test_setup_sh_makes_an_editable_install_type_checkers_see():
    """setuptools' default editable install is an import hook mypy and pyright cannot follow; compat is a .pth path."""
    setup = (ROOT / "setup.sh").read_text()
    assert re.search(r"pip_install -e \S+ --config-settings editable_mode=compat", setup)


def test_readme_says_how_long_the_demo_takes_on_a_cpu_and_its_quick_run():
    assert re.search(r"On a CPU it takes about \d+ minutes", README)
    quick = re.search(r"`aisaac demo ([^`]+)` is the quick run", README)
    assert quick and "--n-train" in quick.group(1) and "--epochs 1" in quick.group(1)
