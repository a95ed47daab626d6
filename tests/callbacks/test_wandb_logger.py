"""WandbLoggerCB: a real W&B run in offline mode (no network), read back from its offline run files."""
import json
import struct

import pytest

from AIsaac.all import WandbLoggerCB

wandb = pytest.importorskip("wandb")
from wandb.proto import wandb_internal_pb2  # noqa: E402


def read_records(path):
    """The records of a `run-<id>.wandb` file: W&B's LevelDB-style log (a 7-byte header, then 32 KiB blocks of
    chunks, each a 4-byte CRC, a 2-byte length and a 1-byte type: full, first, middle, last)."""
    data = open(path, "rb").read()
    assert data[:4] == b":W&B", "not a W&B run file"
    pos, block, out, parts = 7, 32768, [], b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a chunk header is padding
            pos += block - pos % block
            continue
        length, kind = struct.unpack("<HB", data[pos + 4:pos + 7])
        if kind == 0 and length == 0: break
        parts += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # full or last: one record complete
            out.append(wandb_internal_pb2.Record.FromString(parts))
            parts = b""
    return out


def run_contents(root, run_id):
    """History rows (dicts) and config of every offline run folder of `run_id` under `root` (one per fit)."""
    history, config = [], {}
    for path in sorted(root.glob(f"wandb/offline-run-*-{run_id}/run-{run_id}.wandb")):
        for r in read_records(path):
            kind = r.WhichOneof("record_type")
            if kind == "history":
                history.append({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in r.history.item})
            elif kind == "config":
                config.update({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in r.config.update})
    return history, config


@pytest.fixture
def offline(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path


def test_offline_run_files_hold_the_fit(tiny_trainer, offline):
    trainer = tiny_trainer(WandbLoggerCB(project="tiny", hparams={"note": "baseline"}))
    trainer.fit(2, lr=0.1)
    trainer.fit(1, lr=0.01)  # resumes the same run; steps continue
    cb = trainer.WandbLoggerCB
    history, config = run_contents(offline, cb.run_id)
    assert (config["lr"], config["n_epochs"], config["opt_func"], config["note"]) == (0.1, 2, "SGD", "baseline")
    assert config["fit1/lr"] == 0.01
    epochs = [h for h in history if "epoch" in h]
    batches = [h for h in history if "batch" in h]
    m = trainer.MetricsCB
    assert [h["epoch"] for h in epochs] == [0, 1, 2]
    assert [h["epoch/loss/valid"] for h in epochs] == pytest.approx([lo["valid"] for lo in m.losses_epoch])
    assert [h["epoch/metrics/Accuracy"] for h in epochs] == pytest.approx([me["Accuracy"] for me in m.metrics_epoch])
    assert [h["epoch/records/lr"] for h in epochs] == pytest.approx([0.1, 0.1, 0.01])
    assert [h["batch"] for h in batches] == list(range(9))
    assert [h["batch/loss/train_batch"] for h in batches] == pytest.approx([r["loss"] for r in m.losses_batch if r["training"]])
    assert [h["batch/lr/train_batch"] for h in batches] == pytest.approx([0.1] * 6 + [0.01] * 3)


def test_other_processes_log_nothing(tiny_trainer, offline):
    cb = WandbLoggerCB()
    trainer = tiny_trainer(cb)
    trainer.is_main_process = False
    trainer.fit(1, lr=0.1)
    assert cb.run_id is None and not (offline / "wandb").exists()
