"""`from AIsaac.all import *` stays cheap: the heavy optional libraries load when first used, not at import.

A module-set check (timings are bench/import_time.py's): in a fresh interpreter, importing AIsaac.all brings in
none of them."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Each of these costs 0.1 s to seconds to import, and only some features need them.
HEAVY = ("matplotlib", "tqdm", "accelerate", "datasets", "PIL", "pandas", "torchvision", "torcheval", "torchmetrics",
         "transformers", "timm", "IPython", "tensorboard", "mlflow", "wandb", "optuna", "scipy", "fastcore",
         "fastprogress", "sklearn")


def imported_by(statement: str) -> list[str]:
    code = f"import sys; {statement}; print(__import__('json').dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return json.loads(out.splitlines()[-1])


def test_import_all_loads_no_heavy_optional_library():
    # torch itself imports tqdm (torch.hub, for download bars): what counts is what AIsaac adds to it.
    by_torch = {m.split(".")[0] for m in imported_by("import torch")}
    loaded = {m.split(".")[0] for m in imported_by("import AIsaac.all")}
    assert sorted((loaded - by_torch) & set(HEAVY)) == []
    assert {"matplotlib", "accelerate", "datasets"}.isdisjoint(loaded)


def test_import_all_adds_little_beyond_torch():
    """Besides torch's own modules, only AIsaac's and a few of the standard library's."""
    before = {m.split(".")[0] for m in imported_by("import torch")}
    after = {m.split(".")[0] for m in imported_by("import torch; import AIsaac.all")}
    assert sorted(after - before - {"AIsaac"} - set(sys.stdlib_module_names)) == []


def test_import_aisaac_loads_nothing_until_a_name_is_asked_for():
    """`import AIsaac` (as `aisaac --version` does) reads no module of the package's, torch included; the first name
    asked for (`from AIsaac import Trainer`) loads AIsaac.all, and with it no more than `import AIsaac.all` does."""
    assert not {"torch", "AIsaac.all", "AIsaac.trainer"} & set(imported_by("import AIsaac"))
    assert set(imported_by("from AIsaac import Trainer")) == set(imported_by("import AIsaac.all"))
