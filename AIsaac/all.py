"""Everything a user needs, for `from AIsaac.all import *` (the only star-export of the package)."""
from .callback import Callback
from .callback_functions import add_callback, add_callbacks, remove_callback, remove_callbacks
from .order import Order
from .records import final_epoch_log, is_record_key
from .callbacks.accelerate import AccelerateCB
from .callbacks.activation_stats import ActivationStatsCB
from .callbacks.basic_train import BasicTrainCB
from .callbacks.batch_augmentation import BatchAugmentationCB
from .callbacks.batch_transform import BatchTransformCB
from .callbacks.checkpoint import CheckpointCB
from .callbacks.compile import CompileCB
from .callbacks.csv_logger import CSVLoggerCB
from .callbacks.cuda_graph import CudaGraphCB
from .callbacks.device import DeviceCB
from .callbacks.early_stopping import EarlyStoppingCB
from .callbacks.ema import EMACB, SWACB
from .callbacks.frozen_modules import FrozenModulesCB
from .callbacks.grad_accum import GradAccumCB
from .callbacks.grad_clip import GradClipCB
from .callbacks.hooks_callback import HooksCallback
from .callbacks.logger import LoggerCB, epoch_scalars, fit_hparams
from .callbacks.lr_finder import LRFinderCB
from .callbacks.metrics import MetricsCB, optimizer_records
from .callbacks.mlflow_logger import MLflowLoggerCB
from .callbacks.mixed_precision import MixedPrecisionCB
from .callbacks.mixup import CutMixCB, MixUpCB
from .callbacks.momentum_train import MomentumTrainCB
from .callbacks.monitor import MonitorCB
from .callbacks.one_batch import OneBatchCB
from .callbacks.optuna_pruning import OptunaPruningCB
from .callbacks.plateau import ReduceLROnPlateauCB
from .callbacks.presets import CoreCBs
from .callbacks.profile import ProfileCB
from .callbacks.progress import ProgressCB
from .callbacks.save_best import SaveBestCB
from .callbacks.schedulers import (BaseSchedulerCB, BatchSchedulerCB, EpochSchedulerCB, FitSchedulerCB, OneCycleSchedulerCB,
                                  WarmupCosineSchedulerCB, warmup_cosine, warmup_decay)
from .callbacks.tensorboard import TensorBoardCB
from .callbacks.terminate_on_nan import TerminateOnNaNCB
from .callbacks.throughput import ThroughputCB
from .callbacks.wandb_logger import WandbLoggerCB
from .data.columns import DictCollate
from .data.dataset_dict import sample_dataset_dict
from .data.digits import digits_dataset_dict
from .data.fashion_mnist import fashion_mnist_dataset_dict
from .data.files import get_images
from .data.labels import class_names, label_titles
from .data.loaders import DataLoaders, collate_dataset_dict, get_dataloaders
from .data.tensor_loader import TensorLoader
from .data.transforms import inplace
from .dispatch import run_callbacks, with_cbs
from .display.images import UnNormalize, get_grid, show_image, show_images, subplots
from .display.plots import plot_losses
from .display.pretty import PPDict
from .display.source import view_source_code
from .events import EVENTS
from .exceptions import (CallbackError, CallbackSetupError, CancelBatchException, CancelEpochException,
                         CancelFitException, CheckpointError)
from .models.conv import conv, get_model_conv
from .models.lsuv import lsuv_init
from .models.splitters import body_head_splitter, no_weight_decay
from .models.timm import get_model_timm
from .runtime.batch import batch_size, join_batch, split_batch
from .runtime.checkpoint_file import latest_checkpoint, save_checkpoint
from .runtime.distributed import ProcessLostError, ProcessStopError
from .runtime.metric_objects import Accuracy, Mean
from .runtime.materialize import materialize
from .runtime.memory import clean_ipython_hist, clean_memory, clean_traceback
from .runtime.model_state import model_state, unwrap_model
from .runtime.placement import def_device, model_device, to_cpu, to_device
from .runtime.resume import read_checkpoint
from .runtime.rng import get_rng_state, set_rng_state, set_seed
from .runtime.sharded_checkpoint import consolidate
from .tools.lr_find import LRFindResult, lr_find
from .models.hooks import Hook, Hooks, append_stats, get_hist, get_min
from .tools.masks import mask2idxs
from .tools.predict import Predictions
from .tools.names import retrieve_global_name
from .tools.sandbox import restoring
from .trainer import Trainer

__all__ = [
    # the kernel
    "Trainer", "Callback", "Order", "EVENTS", "run_callbacks", "with_cbs", "final_epoch_log", "is_record_key",
    "CancelBatchException", "CancelEpochException", "CancelFitException", "CallbackError", "CallbackSetupError",
    "CheckpointError", "ProcessStopError", "ProcessLostError",
    # callbacks as functions (the trainer's add_callbacks/remove_callbacks)
    "add_callback", "add_callbacks", "remove_callback", "remove_callbacks",
    # callbacks
    "AccelerateCB", "ActivationStatsCB", "BasicTrainCB", "BatchAugmentationCB", "CheckpointCB", "CompileCB",
    "CoreCBs", "CSVLoggerCB", "CudaGraphCB", "DeviceCB", "EarlyStoppingCB", "GradAccumCB", "GradClipCB", "HooksCallback",
    "LRFinderCB", "LRFindResult", "lr_find", "Predictions", "MetricsCB", "MixedPrecisionCB", "MomentumTrainCB", "MonitorCB", "OneBatchCB",
    "ProfileCB", "ProgressCB", "SaveBestCB", "BaseSchedulerCB", "BatchSchedulerCB", "EpochSchedulerCB",
    "OneCycleSchedulerCB", "TensorBoardCB", "TerminateOnNaNCB", "LoggerCB", "MLflowLoggerCB", "WandbLoggerCB",
    "OptunaPruningCB", "epoch_scalars", "fit_hparams", "optimizer_records",
    # issue 20: schedules over the fit, plateaus, weight averaging, batch transforms
    "FitSchedulerCB", "WarmupCosineSchedulerCB", "warmup_cosine", "warmup_decay", "ReduceLROnPlateauCB", "EMACB", "SWACB",
    "BatchTransformCB", "MixUpCB", "CutMixCB",
    # issue 34: throughput, modules a fit uses but does not train
    "ThroughputCB", "FrozenModulesCB",
    # metrics
    "Accuracy", "Mean",
    # data
    "DataLoaders", "DictCollate", "TensorLoader", "fashion_mnist_dataset_dict", "digits_dataset_dict", "inplace",
    "get_dataloaders", "collate_dataset_dict", "class_names", "label_titles", "sample_dataset_dict", "get_images",
    # models
    "conv", "get_model_conv", "get_model_timm", "lsuv_init", "body_head_splitter", "no_weight_decay",
    # runtime
    "def_device", "model_device", "to_device", "to_cpu", "split_batch", "join_batch", "batch_size", "set_seed", "get_rng_state",
    "set_rng_state", "latest_checkpoint", "read_checkpoint", "save_checkpoint", "model_state", "unwrap_model",
    "consolidate", "materialize",
    "clean_memory", "clean_traceback", "clean_ipython_hist",
    # hooks: looking inside a model
    "Hook", "Hooks", "append_stats", "get_hist", "get_min",
    # tools and display
    "restoring", "show_images", "plot_losses", "view_source_code", "show_image", "subplots", "get_grid",
    "UnNormalize", "PPDict", "mask2idxs", "retrieve_global_name",
]
