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
