"""The public surface: `AIsaac.all.__all__` is a literal list of names that exist, it exports what users need, it
keeps every name the old star-export had, and the Trainer declares its methods without help from other imports."""
import ast
import importlib
import inspect
import pkgutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import AIsaac
import AIsaac.all
from AIsaac.callback import Callback

ALL_PY = Path(AIsaac.all.__file__)

# Every name `from AIsaac.all import *` gave before the layout moved (tutorial, docs and users' scripts use them).
OLD_STAR_EXPORT = """Callback AccelerateCB ActivationStatsCB BasicTrainCB BatchAugmentationCB CheckpointCB CompileCB CoreCBs
    CSVLoggerCB CudaGraphCB DeviceCB EarlyStoppingCB GradAccumCB GradClipCB LRFinderCB MetricsCB MixedPrecisionCB
    MomentumTrainCB MonitorCB OneBatchCB ProfileCB ProgressCB SaveBestCB BaseSchedulerCB BatchSchedulerCB
    EpochSchedulerCB OneCycleSchedulerCB TerminateOnNaNCB TensorBoardCB latest_checkpoint read_checkpoint
    save_checkpoint fashion_mnist_dataset_dict DataLoaders DictCollate show_images TensorLoader inplace def_device
    to_cpu to_device ProcessStopError run_callbacks with_cbs EVENTS CallbackError CallbackSetupError
    CancelBatchException CancelEpochException CancelFitException CheckpointError LRFindResult lr_find Accuracy Mean
    conv get_model_conv lsuv_init get_model_timm plot_losses get_rng_state set_rng_state set_seed view_source_code
    Trainer""".split()

# Public names in the user-facing subpackages that are deliberately not exported, each with why.
INTERNAL = {
    "AIsaac.callbacks.accelerate_launch": {"launched_processes", "make_accelerator", "check_launch",  # AccelerateCB's
                                           "vote_group", "check_timeout", "set_timeout"},  # launch
    "AIsaac.callbacks.hooks_callback": {"all_modules"},  # the default module picker of HooksCallback and ActivationStatsCB
    "AIsaac.callbacks.basic_train": {"describe", "check_inputs", "check_targets", "check_shapes", "check_loss",  # first-batch checks
                                     "output_reader", "output_loss",  # and its reading of the model's output
                                     "takes_predictions_only"},  # how a loss of the predictions alone is told apart
    "AIsaac.callbacks.schedulers": {"fit_length"},  # the length FitSchedulerCB's schedules are spread over
    "AIsaac.callbacks.monitor": {"auto_mode"},  # MonitorCB's mode='auto' rule
    "AIsaac.callbacks.profile": {"HostReadCounter"},  # ProfileCB's count_cpu
    "AIsaac.callbacks.metrics": {"metric_values", "selected"},  # MetricsCB's reading of its metrics (vectors as columns)
    # ActivationStatsCB's per-module statistics, and how they are worked out
    "AIsaac.models.hooks": {"activation_stats", "records_to_cpu", "abs_histogram", "StatsScratch"},
    "AIsaac.data.fashion_mnist": {"hf_modules", "read_idx", "fashion_mnist_folder"},
    "AIsaac.data.dataset_loader": {"usable_cores", "loading_plan",  # how from_dataset_dict plans its workers
                                   "DatasetLoader"},  # what from_dataset_dict builds (reached through DataLoaders)
    "AIsaac.data.columns": {"split_tensors",  # from_dataset_dict(in_memory=True)'s reading of a split
                            "batch_columns",  # from_dataset_dict's inputs/targets check
                            "check_format"},  # from_dataset_dict's check of a split without a format
    "AIsaac.data.tensor_loader": {"as_tensor"},
    # the splitters' building blocks, used by Trainer.freeze_to and fit (the splitters themselves are exported)
    "AIsaac.models.splitters": {"norm_params", "find_head", "param_groups", "layer_index"},
}
USER_FACING = ("AIsaac.callbacks.", "AIsaac.data.", "AIsaac.models.")

TRAINER_METHODS = ["fit", "add_callbacks", "remove_callbacks", "get_preds", "predict", "lr_find", "profile",
                   "summarize_callbacks", "summarize_model", "show_image_batch", "is_main_process", "num_processes",
                   "reduce_sum", "log", "freeze", "freeze_to", "unfreeze"]


def literal_all() -> list[str]:
    """`__all__` as written in all.py, read without running it (what a static tool sees)."""
    for node in ast.parse(ALL_PY.read_text()).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            return ast.literal_eval(node.value)  # raises unless it is a literal
    raise AssertionError("all.py assigns no __all__")


def package_modules():
    for info in pkgutil.walk_packages(AIsaac.__path__, "AIsaac."):
        yield importlib.import_module(info.name)


def defined_public(module):
    """(name, object) for the public classes and functions `module` itself defines."""
    return [(n, o) for n, o in vars(module).items()
            if not n.startswith("_") and (inspect.isclass(o) or inspect.isfunction(o))
            and o.__module__ == module.__name__]


def test_all_is_a_literal_list_of_existing_unique_names():
    names = literal_all()
    assert names == AIsaac.all.__all__
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
    missing = [n for n in names if not hasattr(AIsaac.all, n)]
    assert not missing, f"__all__ names that all.py does not define: {missing}"


def test_star_import_gives_exactly_all():
    ns: dict = {}
    exec("from AIsaac.all import *", ns)
    assert set(ns) - {"__builtins__"} == set(AIsaac.all.__all__)


def test_every_old_star_export_name_is_still_there():
    missing = sorted(set(OLD_STAR_EXPORT) - set(AIsaac.all.__all__))
    assert not missing, f"names the old `from AIsaac.all import *` gave that are gone: {missing}"


def test_every_callback_class_is_exported():
    found = {}
    for module in package_modules():
        if not module.__name__.startswith("AIsaac.callbacks."): continue
        for name, obj in defined_public(module):
            if inspect.isclass(obj) and issubclass(obj, Callback) and name not in INTERNAL.get(module.__name__, ()):
                found[name] = module.__name__
    assert len(found) >= 25  # one module per callback: the walk really saw them
    missing = {n: m for n, m in found.items() if n not in AIsaac.all.__all__}
    assert not missing, f"callbacks not exported by AIsaac.all (add them to its __all__): {missing}"


def test_user_facing_names_are_exported_or_declared_internal():
    unlisted = []
    for module in package_modules():
        if not module.__name__.startswith(USER_FACING): continue
        for name, obj in defined_public(module):
            if name not in AIsaac.all.__all__ and name not in INTERNAL.get(module.__name__, ()):
                unlisted.append(f"{module.__name__}.{name}")
    assert not unlisted, (f"public names neither exported by AIsaac.all nor listed as internal in this test: "
                          f"{unlisted}; export them (all.py) or rename them with a leading underscore")
    stale = [f"{m}.{n}" for m, names in INTERNAL.items() for n in names
             if not hasattr(importlib.import_module(m), n)]
    assert not stale, f"INTERNAL lists names that no longer exist: {stale}"


def test_trainer_alone_declares_every_user_method():
    # A fresh interpreter that imports only AIsaac.trainer: nothing else may be needed to complete the class.
    code = textwrap.dedent(f"""
        import sys
        from AIsaac.trainer import Trainer
        assert "AIsaac.all" not in sys.modules
        missing = [m for m in {TRAINER_METHODS!r} if not hasattr(Trainer, m)]
        assert not missing, missing
        for m in {TRAINER_METHODS!r}:
            owner = next(k for k in Trainer.__mro__ if m in vars(k))
            assert owner.__module__.startswith("AIsaac."), (m, owner)
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_the_package_gives_the_names_of_AIsaac_all():
    """`from AIsaac import Trainer`, `AIsaac.MetricsCB`, `from AIsaac import *` and `dir(AIsaac)`: AIsaac.all's names."""
    from AIsaac import DataLoaders, MetricsCB, Trainer, set_seed
    assert (Trainer, MetricsCB, DataLoaders, set_seed) == (AIsaac.all.Trainer, AIsaac.all.MetricsCB,
                                                          AIsaac.all.DataLoaders, AIsaac.all.set_seed)
    assert AIsaac.__all__ == ["__version__", *AIsaac.all.__all__]
    assert set(AIsaac.all.__all__) <= set(dir(AIsaac))
    star: dict = {}
    exec("from AIsaac import *", star)
    assert {k: v for k, v in star.items() if k != "__builtins__"} == {
        "__version__": AIsaac.__version__, **{n: getattr(AIsaac.all, n) for n in AIsaac.all.__all__}}
    with pytest.raises(AttributeError, match="module 'AIsaac' has no attribute 'Trainr'"): AIsaac.Trainr
    assert not hasattr(AIsaac, "__wrapped__")  # dunder probes (inspect, doctest) are not names to look up
