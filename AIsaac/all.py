"""Everything a user needs, for `from AIsaac.all import *` (the only star-export of the package)."""
import types as _types

from .callback import Callback
from .callbacks.accelerate import AccelerateCB
from .callbacks.activation_stats import ActivationStatsCB
from .callbacks.basic_train import BasicTrainCB
from .callbacks.batch_augmentation import BatchAugmentationCB
from .callbacks.checkpoint import CheckpointCB
from .callbacks.compile import CompileCB
from .callbacks.core import CoreCBs
from .callbacks.csv_logger import CSVLoggerCB
from .callbacks.cuda_graph import CudaGraphCB
from .callbacks.device import DeviceCB
from .callbacks.early_stopping import EarlyStoppingCB
from .callbacks.grad_accum import GradAccumCB
from .callbacks.grad_clip import GradClipCB
from .callbacks.lr_finder import LRFinderCB
from .callbacks.metrics import MetricsCB
from .callbacks.mixed_precision import MixedPrecisionCB
from .callbacks.momentum_train import MomentumTrainCB
from .callbacks.monitor import MonitorCB
from .callbacks.one_batch import OneBatchCB
from .callbacks.profile import ProfileCB
from .callbacks.progress import ProgressCB
from .callbacks.save_best import SaveBestCB
from .callbacks.schedulers import BaseSchedulerCB, BatchSchedulerCB, EpochSchedulerCB, OneCycleSchedulerCB
from .callbacks.terminate_on_nan import TerminateOnNaNCB
from .callbacks.tensorboard import TensorBoardCB
from .checkpoint import latest_checkpoint, read_checkpoint, save_checkpoint
from .data.fashion_mnist import fashion_mnist_dataset_dict
from .data.loaders import DataLoaders, DictCollate
from .data.show import show_images
from .data.tensor_loader import TensorLoader
from .data.transforms import inplace
from .device import def_device, to_cpu, to_device
from .distributed import ProcessStopError
from .dispatch import run_callbacks, with_cbs
from .events import EVENTS
from .exceptions import (CallbackError, CallbackSetupError, CancelBatchException, CancelEpochException,
                         CancelFitException, CheckpointError)
from .lr_find import LRFindResult, lr_find
from .metrics import Accuracy, Mean
from .models.conv import conv, get_model_conv
from .models.lsuv import lsuv_init
from .models.timm import get_model_timm
from .plots import plot_losses
from .rng import get_rng_state, set_rng_state
from .seed import set_seed
from .source import view_source_code
from .trainer import Trainer
# Modules that attach methods: DataLoaders.show_batch, Trainer.show_image_batch, .summarize_callbacks,
# .summarize_model, .get_preds, .predict, .profile (and MetricsCB.plot, Trainer.lr_find, from the imports above).
from . import predict, profile, show_image_batch, summarize_callbacks, summarize_model  # noqa: F401

# Every public name imported above, modules excepted (the attach-only imports, say).
__all__ = [_n for _n, _v in list(globals().items()) if not _n.startswith("_") and not isinstance(_v, _types.ModuleType)]
