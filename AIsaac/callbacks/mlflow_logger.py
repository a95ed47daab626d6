"""`MLflowLoggerCB`: the fit's hyperparameters, epoch numbers and per-batch training losses and lrs as an MLflow run."""
from __future__ import annotations

import socket
import time
from typing import Any
from urllib.parse import urlsplit

from ..runtime.messages import inform
from .logger import LoggerCB


class MLflowLoggerCB(LoggerCB):
    '''Logs to an MLflow run (see LoggerCB for what is logged and when; main process only, no per-batch sync)

    `tracking_uri=None` is MLflow's own default: $MLFLOW_TRACKING_URI when set, else a local store in the working
    folder (`sqlite:///mlflow.db` since MLflow 3, the `./mlruns` folder before); any tracking URI works. The run is
    created in `experiment` (made when missing) at the first fit and resumed by later fits; each fit ends it as
    FINISHED, or FAILED when the fit ends in an error. `run_id` names it once created (it is part of `state_dict`, so
    a fit resumed from a checkpoint continues the same run); read it back with `mlflow.MlflowClient(cb.tracking_uri)`.
    A tracking server (an http(s) URI) that does not answer within `connect_timeout` seconds is an error at the
    start of the fit, naming its address, rather than minutes of MLflow's retries.
    Metric names are the LoggerCB names (`loss/valid`, `metrics/Accuracy`, `records/lr`, `loss/train_batch`, ...).
    '''

    def __init__(self, experiment: str = "AIsaac", run_name: str | None = None, tracking_uri: str | None = None,
                 hparams: dict[str, Any] | None = None, log_batches: bool = True, tags: dict[str, str] | None = None,
                 connect_timeout: float = 5.0):
        try:
            import mlflow  # noqa: F401
        except ImportError as e:
            raise ImportError("MLflowLoggerCB needs MLflow: pip install mlflow (or pip install 'aisaac[mlflow]').") from e
        super().__init__(hparams, log_batches)
        self.experiment, self.run_name, self.tracking_uri, self.tags = experiment, run_name, tracking_uri, tags or {}
        self.connect_timeout = connect_timeout
        self.run_id: str | None = None
        self.client: Any = None

    def open(self, trainer):
        from mlflow import MlflowClient
        from mlflow.tracking import get_tracking_uri
        if self.tracking_uri is None: self.tracking_uri = get_tracking_uri()
        _check_reachable(self.tracking_uri, self.connect_timeout)
        self.client = MlflowClient(self.tracking_uri)
        self._buffer = []
        if self.run_id is not None and not self._run_exists():
            inform(trainer, f"MLflowLoggerCB: run {self.run_id} is not in the tracking store {self.tracking_uri} "
                            f"(a checkpoint from another store?); logging to a new run instead.")
            self.run_id = None
        if self.run_id is None:
            exp = self.client.get_experiment_by_name(self.experiment)
            exp_id = exp.experiment_id if exp is not None else self.client.create_experiment(self.experiment)
            self.run_id = self.client.create_run(exp_id, run_name=self.run_name, tags=self.tags).info.run_id
            return
        self.client.update_run(self.run_id, status="RUNNING")
        if trainer.resuming:
            inform(trainer, f"MLflowLoggerCB continues MLflow run {self.run_id} at epoch step {self.epochs_logged} "
                            f"(the run the checkpoint was logging to).")

    def _run_exists(self) -> bool:
        from mlflow.exceptions import MlflowException
        try: self.client.get_run(self.run_id)
        except MlflowException as e:
            if getattr(e, "error_code", None) == "RESOURCE_DOES_NOT_EXIST": return False
            raise
        return True

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
        # The run is ended even when the last values cannot be sent (the server gone, say): never left RUNNING.
        try: self._flush()
        finally: self.client.set_terminated(self.run_id, "FAILED" if self.failed else "FINISHED")

    def state_dict(self) -> dict[str, Any]:
        """LoggerCB's counters and the run id: a fit resumed from a checkpoint continues the same MLflow run."""
        return {**super().state_dict(), "run_id": self.run_id}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.run_id = state.get("run_id", self.run_id)


def _check_reachable(uri: str, timeout: float) -> None:
    """Raise ConnectionError naming the address when the tracking server of an http(s) `uri` does not accept a
    connection within `timeout` seconds (MLflow itself would retry each request for minutes)."""
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.hostname: return  # a local store, Databricks...
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout): pass
    except OSError as e:
        raise ConnectionError(f"MLflowLoggerCB cannot reach the MLflow tracking server at {uri} ({parts.hostname}:"
                              f"{port}: {e.strerror or e}). Start it (mlflow server --host {parts.hostname} --port "
                              f"{port}), fix tracking_uri (or $MLFLOW_TRACKING_URI), or log to a local store: "
                              f"MLflowLoggerCB(tracking_uri='sqlite:///mlflow.db').") from e
