"""`Order`: the named `order` values that place callbacks relative to the built-in ones."""
from __future__ import annotations


class Order:
    """Named `order` values. Callbacks run in increasing `order` at every event; ties keep the order they were added.

    Place a callback relative to these (e.g. `order = Order.LOGGER`) rather than to another class's number.
    """

    FIRST = -1000       # profilers: their before_fit runs before every other callback's
    LAUNCH = -20        # distributed launch (AccelerateCB): prepares model, optimizer and loaders before they move
    DEVICE = -10        # DeviceCB: the model and each batch are on the device before anyone reads them
    STEP_WRAPPER = -5   # batch augmentation, compile, mixed precision: wrap the batch, the model or the step
    GUARD = -1          # checks of the loss before the step callbacks act on it (TerminateOnNaNCB)
    DEFAULT = 0         # the training step and most callbacks
    METRICS = 0         # MetricsCB: fills `trainer.epoch_log` at the cleanup_epoch of an epoch's last phase
    LOGGER = 10         # loggers and monitors: read the finished `epoch_log` (CSV, TensorBoard, early stopping)
    DISPLAY = 50        # ProgressCB: shows the epoch table
    LAST = 100          # after the others' after_batch and after_epoch (checkpoints, OneBatchCB)
    FINAL = 1000        # the very end of an event (AccelerateCB's agreed stop, raised once all others cleaned up)
