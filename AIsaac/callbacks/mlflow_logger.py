"""`MLflowLoggerCB`: the fit's hyperparameters, epoch numbers and per-batch training losses and lrs as an MLflow run."""
from __future__ import annotations

import time
from typing import Any

from .logger import LoggerCB


class MLflowLoggerCB(LoggerCB):
    '''Logs to an MLflow run (see LoggerCB for what is logged and when; main process only, no per-batch sync)

    `tracking_uri=None` is MLflow's own default: $MLFLOW_TRACKING_URI when set, else a local store in the working
    folder (`sqlite:///mlflow.db` since MLflow 3, the `./mlruns` folder before); any tracking URI works. The run is
    created in `experiment` (made when missing) at the first fit and resumed by later fits; each fit ends it as
    FINISHED. `run_id` names it once created; read it back with `mlflow.MlflowClient(cb.tracking_uri)`.
    Metric names are the LoggerCB names (`loss/valid`, `metrics/Accuracy`, `records/lr`, `loss/train_batch`, ...).
    '''

    def __init__(self, experiment: str = "AIsaac", run_name: str | None = None, tracking_uri: str | None = None,
                 hparams: dict[str, Any] | None = None, log_batches: bool = True, tags: dict[str, str] | None = None):
        try:
            import mlflow  # noqa: F401
        except ImportError as e:
            raise ImportError("MLflowLoggerCB needs MLflow: pip install mlflow (or pip install 'aisaac[mlflow]').") from e
        super().__init__(hparams, log_batches)
        self.experiment, self.run_name, self.tracking_uri, self.tags = experiment, run_name, tracking_uri, tags or {}
        self.run_id: str | None = None
        self.client: Any = None

    def open(self, trainer):
        from mlflow import MlflowClient
        from mlflow.tracking import get_tracking_uri
        if self.tracking_uri is None: self.tracking_uri = get_tracking_uri()
        self.client = MlflowClient(self.tracking_uri)
        if self.run_id is None:
            exp = self.client.get_experiment_by_name(self.experiment)
            exp_id = exp.experiment_id if exp is not None else self.client.create_experiment(self.experiment)
            self.run_id = self.client.create_run(exp_id, run_name=self.run_name, tags=self.tags).info.run_id
        else: self.client.update_run(self.run_id, status="RUNNING")
        self._buffer = []

    def write_params(self, params):
        from mlflow.entities import Param
        self.client.log_batch(self.run_id, params=[Param(k, str(v)) for k, v in params.items()])

    def write_scalars(self, values, step, per):
        from mlflow.entities import Metric
        now = int(time.time() * 1000)
        self._buffer.extend(Metric(k, float(v), now, step) for k, v in values.items())
        if per == "epoch": self._flush()  # one request per epoch, batch values included

    def _flush(self) -> None:
        for i in range(0, len(self._buffer), 1000):  # MLflow takes at most 1000 metrics per request
            self.client.log_batch(self.run_id, metrics=self._buffer[i:i + 1000])
        self._buffer = []

    def close(self):
        self._flush()
        self.client.set_terminated(self.run_id, "FINISHED")
