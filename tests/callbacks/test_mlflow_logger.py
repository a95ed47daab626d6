"""MLflowLoggerCB: a real MLflow run in a local store, read back with MLflow's own client."""
import pytest
import torch

from AIsaac.all import MLflowLoggerCB

mlflow = pytest.importorskip("mlflow")


def test_run_read_back_with_mlflows_client(tiny_trainer, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default store is local, in the working folder
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    trainer = tiny_trainer(MLflowLoggerCB(run_name="tiny", hparams={"note": "baseline"}))
    trainer.fit(2, lr=0.1)
    trainer.fit(1, lr=0.01)  # the same run, steps continue
    cb = trainer.MLflowLoggerCB
    assert (tmp_path / "mlflow.db").exists() or (tmp_path / "mlruns").is_dir()
    client = mlflow.MlflowClient(cb.tracking_uri)
    run = client.get_run(cb.run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "tiny"
    assert client.get_experiment(run.info.experiment_id).name == "AIsaac"
    params = run.data.params
    assert (params["lr"], params["n_epochs"], params["opt_func"], params["note"]) == ("0.1", "2", "SGD", "baseline")
    assert params["fit1/lr"] == "0.01" and params["fit1/n_epochs"] == "1"
    m = trainer.MetricsCB
    history = lambda key: [(x.step, x.value) for x in sorted(client.get_metric_history(cb.run_id, key), key=lambda x: x.step)]
    assert history("loss/valid") == [(i, pytest.approx(lo["valid"])) for i, lo in enumerate(m.losses_epoch)]
    assert history("metrics/Accuracy") == [(i, pytest.approx(me["Accuracy"])) for i, me in enumerate(m.metrics_epoch)]
    assert [v for _, v in history("records/lr")] == pytest.approx([0.1, 0.1, 0.01])
    batch = [r["loss"] for r in m.losses_batch if r["training"]]
    assert history("loss/train_batch") == [(i, pytest.approx(v)) for i, v in enumerate(batch)]  # 3 batches x 3 epochs
    assert [v for _, v in history("lr/train_batch")] == pytest.approx([0.1] * 6 + [0.01] * 3)
    # The last valid loss, by hand on the final weights.
    x, y = trainer.dls.valid.dataset.tensors
    with torch.no_grad(): expected = torch.nn.functional.cross_entropy(trainer.model(x), y).item()
    assert history("loss/valid")[-1][1] == pytest.approx(expected, abs=1e-6)


def test_other_processes_log_nothing(tiny_trainer, tmp_path):
    cb = MLflowLoggerCB(tracking_uri=f"sqlite:///{tmp_path}/never.db")
    trainer = tiny_trainer(cb)
    trainer.is_main_process = False  # what AccelerateCB sets on the other processes
    trainer.fit(1, lr=0.1)
    assert cb.run_id is None and cb.client is None and not (tmp_path / "never.db").exists()


# ---- issue 21: an unreachable server fails fast; a resumed fit continues the run; a failed fit is FAILED ----
import socket  # noqa: E402
import time  # noqa: E402

from AIsaac.all import Callback, CheckpointCB  # noqa: E402


def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens there once the socket is closed


def test_an_unreachable_server_fails_within_seconds_naming_its_address(tiny_trainer, monkeypatch):
    # MLflow's own default retries held before_fit for about 4 minutes before this check.
    for var in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"):
        monkeypatch.delenv(var, raising=False)
    uri = f"http://127.0.0.1:{closed_port()}"
    trainer = tiny_trainer(MLflowLoggerCB(tracking_uri=uri))
    start = time.monotonic()
    with pytest.raises(ConnectionError) as info: trainer.fit(1, lr=0.1)
    assert time.monotonic() - start < 10
    message = str(info.value)
    assert "MLflowLoggerCB failed at event 'before_fit'" in message and "cannot reach the MLflow tracking server" in message
    assert uri in message and "tracking_uri" in message and "mlflow server" in message
    assert trainer.MLflowLoggerCB.run_id is None


class Crash(Callback):
    """Raises `exc` after training batch `at` (epoch, batch)."""

    def __init__(self, at, exc): self.at, self.exc = at, exc

    def after_batch(self, trainer):
        if trainer.training and (trainer.epoch, trainer.batch_num) == self.at: raise self.exc


def metric_steps(client, run_id, key):
    return [(m.step, m.value) for m in sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)]


@pytest.mark.parametrize("exc", [ValueError("the data went bad"), KeyboardInterrupt()], ids=["error", "ctrl-c"])
def test_a_fit_ending_in_an_error_marks_the_run_failed(tiny_trainer, tmp_path, exc):
    uri = f"sqlite:///{tmp_path}/store.db"
    trainer = tiny_trainer(MLflowLoggerCB(tracking_uri=uri))
    with pytest.raises(type(exc)): trainer.fit(2, lr=0.1, callbacks=[Crash((1, 1), exc)])
    client = mlflow.MlflowClient(uri)
    assert client.get_run(trainer.MLflowLoggerCB.run_id).info.status == "FAILED"
    trainer.fit(1, lr=0.1)  # the next fit of the same callback continues the run and ends it well
    assert client.get_run(trainer.MLflowLoggerCB.run_id).info.status == "FINISHED"


def test_a_cancelled_fit_is_finished_and_a_fit_inside_an_except_block_too(tiny_trainer, tmp_path):
    from AIsaac.all import CancelFitException
    uri = f"sqlite:///{tmp_path}/store.db"
    trainer = tiny_trainer(MLflowLoggerCB(tracking_uri=uri))
    trainer.fit(2, lr=0.1, callbacks=[Crash((0, 1), CancelFitException())])
    client = mlflow.MlflowClient(uri)
    assert client.get_run(trainer.MLflowLoggerCB.run_id).info.status == "FINISHED"
    try: raise OSError("an earlier problem the script handles by fitting again")
    except OSError: trainer.fit(1, lr=0.1)
    assert client.get_run(trainer.MLflowLoggerCB.run_id).info.status == "FINISHED"


def test_a_resumed_fit_continues_the_same_run(tiny_trainer, tmp_path):
    uri, ckpt = f"sqlite:///{tmp_path}/store.db", tmp_path / "ckpt"
    full = tiny_trainer(MLflowLoggerCB(tracking_uri=uri, run_name="full"))
    full.fit(3, lr=0.1)
    first = tiny_trainer(MLflowLoggerCB(tracking_uri=uri, run_name="resumed"), CheckpointCB(ckpt, every_n_batches=1))
    with pytest.raises(KeyboardInterrupt): first.fit(3, lr=0.1, callbacks=[Crash((1, 1), KeyboardInterrupt())])
    run_id = first.MLflowLoggerCB.run_id
    # A new process: new callbacks, the run id comes from the checkpoint.
    again = tiny_trainer(MLflowLoggerCB(tracking_uri=uri, run_name="resumed"), CheckpointCB(ckpt, every_n_batches=1))
    again.fit(3, lr=0.1, resume_from=ckpt)
    assert again.MLflowLoggerCB.run_id == run_id
    client = mlflow.MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("AIsaac").experiment_id])
    assert sorted(r.info.run_name for r in runs) == ["full", "resumed"]  # no third run
    assert client.get_run(run_id).info.status == "FINISHED"
    for key in ("loss/valid", "metrics/Accuracy", "loss/train_batch", "lr/train_batch"):
        assert metric_steps(client, run_id, key) == \
            [(s, pytest.approx(v)) for s, v in metric_steps(client, full.MLflowLoggerCB.run_id, key)], key
