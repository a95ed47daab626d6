"""The original AIsaac's exported names: every one importable from AIsaac.all, and each listed on the migration page."""
from pathlib import Path

import AIsaac.all as everything

# The 57 names of the original's modules' __all__ (utils, dataloaders, models, initialization, trainer, training,
# recording, visualization, cb_groups, augmentation) that are names here too.
ORIGINAL_NAMES = [
    # utils
    "def_device", "get_images", "set_seed", "inplace", "mask2idxs", "PPDict", "retrieve_global_name",
    "clean_ipython_hist", "clean_traceback", "clean_memory", "to_device", "to_cpu", "show_image", "subplots",
    "get_grid", "show_images", "run_callbacks", "add_callback", "add_callbacks", "remove_callback",
    "remove_callbacks", "with_cbs", "Hook", "Hooks",
    # dataloaders
    "get_dataloaders", "collate_dataset_dict", "DataLoaders", "sample_dataset_dict",
    # models, initialization
    "get_model_timm", "conv", "get_model_conv", "lsuv_init",
    # trainer
    "CancelFitException", "CancelBatchException", "CancelEpochException", "Callback", "Trainer",
    # training
    "OneBatchCB", "BasicTrainCB", "DeviceCB", "MomentumTrainCB", "BaseSchedulerCB", "BatchSchedulerCB",
    "EpochSchedulerCB", "OneCycleSchedulerCB", "AccelerateCB",
    # recording
    "MetricsCB", "ProgressCB",
    # visualization
    "LRFinderCB", "HooksCallback", "append_stats", "get_hist", "get_min", "ActivationStatsCB",
    # cb_groups, augmentation
    "CoreCBs", "BatchAugmentationCB", "UnNormalize",
]
# The original's three other exports, which are not names here: a list of events, and two Trainer methods.
ORIGINAL_CB_STEPS = ["before_fit", "before_epoch", "before_batch", "predict", "get_loss", "before_backward", "backward",
                     "step", "zero_grad", "after_batch", "cleanup_batch", "after_epoch", "cleanup_epoch", "after_fit",
                     "cleanup_fit"]


def test_all_57_original_names_are_exported():
    assert len(ORIGINAL_NAMES) == len(set(ORIGINAL_NAMES)) == 57
    missing = [n for n in ORIGINAL_NAMES if n not in everything.__all__ or not hasattr(everything, n)]
    assert not missing, f"AIsaac.all lacks the original's {missing}"
    namespace = {}
    exec("from AIsaac.all import *", namespace)
    assert set(ORIGINAL_NAMES) <= set(namespace)


def test_the_other_three_have_their_places():
    from AIsaac.all import EVENTS, Trainer
    assert set(ORIGINAL_CB_STEPS) == set(EVENTS)  # cb_steps -> EVENTS
    assert callable(Trainer.summarize_callbacks) and callable(Trainer.show_image_batch)


def test_the_migration_page_lists_every_name():
    page = (Path(__file__).parents[1] / "docs" / "migrating.md").read_text()
    for name in [*ORIGINAL_NAMES, "cb_steps", "summarize_callbacks", "show_image_batch"]:
        assert f"`{name}`" in page, name
