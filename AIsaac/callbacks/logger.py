"""`LoggerCB`: the base of the experiment-tracker loggers (TensorBoard, MLflow, W&B); a tracker is four short methods."""
from __future__ import annotations

from typing import Any

from ..callback import Callback, Order, check_log_key, final_epoch_log, is_record_key
from ..exceptions import CANCEL_EXCEPTIONS


def fit_hparams(trainer: Any) -> dict[str, Any]:
    """The fit's hyperparameters as plain values: lr, n_epochs, optimizer, loss, model, batch size, parameter count."""
    name = lambda o: getattr(o, "__name__", None) or getattr(getattr(o, "func", None), "__name__", None) or type(o).__name__
    out: dict[str, Any] = {"lr": trainer.lr, "n_epochs": trainer.n_epochs, "opt_func": name(trainer.opt_func),
                           "loss_func": name(trainer.loss_func), "model": type(trainer.model).__name__,
                           "n_params": sum(p.numel() for p in trainer.model.parameters())}
    keywords = getattr(trainer.opt_func, "keywords", None)  # functools.partial(SGD, momentum=0.9)
    for k, v in (keywords or {}).items():
        if isinstance(v, (int, float, str, bool)): out[f"opt_{k}"] = v
    bs = getattr(getattr(trainer.dls, "train", None), "batch_size", None)
    if bs is not None: out["batch_size"] = bs
    return out


class LoggerCB(Callback):
    '''Feeds a tracker from `trainer.epoch_log` and MetricsCB's per-batch losses, on the main process only

    One callback is one run of the tracker, over all the fits it takes part in; steps keep counting across them
    (`epochs_logged`, `batches_logged`). Subclasses write to their tracker in four methods: `open(trainer)` (at the
    start of each fit: start the run, or resume it; a fit resumed from a checkpoint opens at its first epoch, once the
    checkpoint's state is loaded, so a tracker keeping its run id in `state_dict` continues that run),
    `write_params(params)` (each fit's hyperparameters: `fit_hparams` plus `hparams`; the keys of later fits get a
    `fit<n>/` prefix), `write_scalars(values, step, per)` (`per` is 'epoch' or 'batch') and `close()` (at the end of
    each fit: flush and end the run for now; `last_scalars` holds the last epoch's values, `failed` is True when the
    fit ended in an error, a cancel being no error). Per training batch only host numbers are kept (the lr of each
    param group, read where the step used it); the losses come from `trainer.batch_losses` (filled by MetricsCB) at the end of each epoch, so
    logging adds no host-device sync.
    Epoch values are named `loss/train`, `loss/valid`, `metrics/<name>` and `records/<lr, mom, train_time, ...>`;
    batch values `loss/train_batch` and `lr/train_batch` (`lr_<group>/train_batch` with several groups).
    Needs MetricsCB (refused at fit start without it). `state_dict` holds the step counters, so a resumed fit
    continues the same curves at the same steps. Takes no part in side runs (`lr_find`...).
    '''

    order = Order.LOGGER  # reads epoch_log once MetricsCB has filled it
    side_runs = False  # writes to the tracker: takes no part in lr_find and the other side runs

    def __init__(self, hparams: dict[str, Any] | None = None, log_batches: bool = True):
        self.hparams, self.log_batches = dict(hparams or {}), log_batches
        self.epochs_logged, self.batches_logged, self.fits = 0, 0, 0
        self.last_scalars: dict[str, float] = {}
        self._open, self._main, self._deferred, self.failed = False, True, False, False

    # ---- what a tracker implements ----
    def open(self, trainer: Any) -> None: pass
    def write_params(self, params: dict[str, Any]) -> None: pass
    def write_scalars(self, values: dict[str, float], step: int, per: str) -> None: raise NotImplementedError
    def close(self) -> None: pass

    # ---- events ----
    def before_fit(self, trainer):
        check_log_key(self, None, trainer)
        self._main = trainer.is_main_process
        if not self._main: return
        self.last_scalars, self.failed = {}, False
        self._seen = len(trainer.batch_losses) if trainer.batch_losses is not None else 0
        self._lrs: list[tuple[float, ...]] = []
        groups = trainer.opt.param_groups if trainer.opt is not None else []
        self._lr_names = ["lr"] if len(groups) == 1 else [f"lr_{i}" for i in range(len(groups))]
        # A resumed fit continues the checkpoint's run, whose id (`state_dict`) is loaded once before_fit is over:
        # the tracker is opened at the first epoch instead.
        self._deferred = trainer.resuming
        if not self._deferred: self._start(trainer)

    def _start(self, trainer: Any) -> None:
        self._deferred = False
        self.open(trainer)
        self._open = True
        prefix = f"fit{self.fits}/" if self.fits else ""
        self.write_params({prefix + k: v for k, v in {**fit_hparams(trainer), **self.hparams}.items()})
        self.fits += 1

    def before_epoch(self, trainer):
        if self._main and self._deferred: self._start(trainer)

    def before_batch(self, trainer):
        # The lr this batch's step uses (schedulers change it in after_batch); Python floats, no device involved.
        if self._main and trainer.training and self.log_batches:
            self._lr = tuple(g["lr"] for g in trainer.opt.param_groups)

    def after_batch(self, trainer):
        if self._main and trainer.training and self.log_batches: self._lrs.append(self._lr)

    def cleanup_epoch(self, trainer):
        log = final_epoch_log(trainer)
        if log is None or not self._main: return
        batch_losses = trainer.batch_losses  # the trainer's per-batch losses, filled by MetricsCB once per phase
        if self.log_batches and batch_losses is not None:
            losses = [r["loss"] for r in batch_losses[self._seen:] if r["training"]]
            self._seen = len(batch_losses)
            lrs, self._lrs = self._lrs, []
            for i, loss in enumerate(losses):
                values = {"loss/train_batch": loss}
                if i < len(lrs): values.update({f"{n}/train_batch": lr for n, lr in zip(self._lr_names, lrs[i])})
                self.write_scalars(values, self.batches_logged, "batch")
                self.batches_logged += 1
        self.last_scalars = epoch_scalars(log)
        self.write_scalars(self.last_scalars, self.epochs_logged, "epoch")
        self.epochs_logged += 1

    def cleanup_fit(self, trainer):
        # Run while the fit's error (if any) is being handled: the tracker marks the run failed.
        error = trainer.exception
        self.failed = error is not None and not isinstance(error, CANCEL_EXCEPTIONS)
        self._deferred = False
        try:
            if self._open: self.close()  # also after a failed fit, so what was logged is kept
        finally: self._open = False

    def state_dict(self) -> dict[str, Any]:
        """The step counters and the training batches' lrs of the epoch so far: a resumed fit continues the same
        curves at the same steps."""
        return {"epochs_logged": self.epochs_logged, "batches_logged": self.batches_logged, "fits": self.fits,
                "seen": getattr(self, "_seen", 0), "lrs": list(getattr(self, "_lrs", []))}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epochs_logged, self.batches_logged = state["epochs_logged"], state["batches_logged"]
        self.fits, self._seen, self._lrs = state.get("fits", self.fits), state["seen"], list(state.get("lrs", []))


def epoch_scalars(log: dict[str, Any]) -> dict[str, float]:
    """An epoch log's numbers under tracker names: `loss/<phase>`, `records/<record>`, `metrics/<name>`."""
    out = {}
    for k, v in log.items():
        if k in ("epoch", "step") or isinstance(v, bool) or not isinstance(v, (int, float)): continue
        out[f"loss/{k}" if k in ("train", "valid") else f"records/{k}" if is_record_key(k) else f"metrics/{k}"] = float(v)
    return out
