"""Everything a user needs, for `from AIsaac.all import *` (the only star-export of the package)."""
from .callback import Callback
from .callbacks.activation_stats import ActivationStatsCB
from .callbacks.basic_train import BasicTrainCB
from .callbacks.core import CoreCBs
from .callbacks.cuda_graph import CudaGraphCB
from .callbacks.device import DeviceCB
from .callbacks.metrics import MetricsCB
from .callbacks.momentum_train import MomentumTrainCB
from .callbacks.profile import ProfileCB
from .callbacks.progress import ProgressCB
from .data.loaders import DataLoaders, DictCollate
from .data.tensor_loader import TensorLoader
from .data.transforms import inplace
from .device import def_device, to_cpu, to_device
from .dispatch import run_callbacks, with_cbs
from .events import EVENTS
from .exceptions import (CallbackError, CallbackSetupError, CancelBatchException, CancelEpochException,
                         CancelFitException)
from .metrics import Accuracy, Mean
from .models.conv import conv, get_model_conv
from . import profile as _profile  # noqa: F401  (attaches Trainer.profile)
from .seed import set_seed
from .source import view_source_code
from .trainer import Trainer

__all__ = [
    "Callback", "ActivationStatsCB", "BasicTrainCB", "CoreCBs", "CudaGraphCB", "DeviceCB", "MetricsCB", "MomentumTrainCB",
    "ProfileCB", "ProgressCB", "DataLoaders", "DictCollate", "TensorLoader", "inplace", "def_device", "to_cpu", "to_device", "run_callbacks",
    "with_cbs", "EVENTS", "CallbackError", "CallbackSetupError", "CancelBatchException", "CancelEpochException",
    "CancelFitException", "Accuracy", "Mean", "conv", "get_model_conv", "set_seed", "view_source_code", "Trainer",
]
