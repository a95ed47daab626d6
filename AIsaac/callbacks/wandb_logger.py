"""`WandbLoggerCB`: the fit's hyperparameters, epoch numbers and per-batch training losses and lrs as a W&B run."""
from __future__ import annotations

from typing import Any

from ..runtime.messages import inform
from .logger import LoggerCB


class WandbLoggerCB(LoggerCB):
    '''Logs to a Weights & Biases run (see LoggerCB for what is logged and when; main process only, no per-batch sync)

    `mode='offline'` (or WANDB_MODE=offline) needs no network or account: the run is written under `dir`
    (default $WANDB_DIR, else the working folder) in `wandb/offline-run-*`, for `wandb sync` later. The run is started
    at the first fit and ended at the end of each fit (so its files are complete), with exit code 1 when the fit ends
    in an error; later fits resume it by its `run_id`, which is part of `state_dict`, so a fit resumed from a
    checkpoint continues the same run. Epoch values are plotted against `epoch`, batch values against `batch`;
    `init_kwargs` go to `wandb.init`.
    '''

    def __init__(self, project: str = "AIsaac", name: str | None = None, mode: str | None = None,
                 dir: str | None = None, hparams: dict[str, Any] | None = None, log_batches: bool = True,
                 **init_kwargs: Any):
        try:
            import wandb  # noqa: F401
        except ImportError as e:
            raise ImportError("WandbLoggerCB needs wandb: pip install wandb (or pip install 'aisaac[wandb]').") from e
        super().__init__(hparams, log_batches)
        self.project, self.name, self.mode, self.dir, self.init_kwargs = project, name, mode, dir, init_kwargs
        self.run, self.run_id = None, None

    def open(self, trainer):
        import wandb
        kwargs = dict(project=self.project, name=self.name, mode=self.mode, dir=self.dir, **self.init_kwargs)
        if self.run_id is not None: kwargs.update(id=self.run_id, resume="allow")
        self.run = wandb.init(**{k: v for k, v in kwargs.items() if v is not None})
        if trainer.resuming and self.run_id is not None:
            inform(trainer, f"WandbLoggerCB continues W&B run {self.run_id} at epoch step {self.epochs_logged} (the "
                            f"run the checkpoint was logging to).")
        self.run_id = self.run.id
        for per in ("epoch", "batch"):
            self.run.define_metric(per)
            self.run.define_metric(f"{per}/*", step_metric=per)

    def write_params(self, params):
        self.run.config.update(params, allow_val_change=True)

    def write_scalars(self, values, step, per):
        self.run.log({per: step, **{f"{per}/{k}": v for k, v in values.items()}})

    def close(self):
        run, self.run = self.run, None
        run.finish(exit_code=1 if self.failed else 0)

    def state_dict(self) -> dict[str, Any]:
        """LoggerCB's counters and the run id: a fit resumed from a checkpoint continues the same W&B run."""
        return {**super().state_dict(), "run_id": self.run_id}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.run_id = state.get("run_id", self.run_id)
