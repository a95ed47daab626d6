"""WandbLoggerCB: a real W&B run in offline mode (no network), read back from its offline run files."""
import json
import struct
import time

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


def read_run(root, run_id):
    """History rows (dicts), config and exit codes of every offline run folder of `run_id` under `root` (one per
    fit), as far as written. A folder is named by the second its fit started, `offline-run-<time>-<id>`, and W&B adds
    `-1`, `-2` to the names of fits started within the same second: the glob takes those too (it did not, and a test
    that read a second fit's config failed whenever its two fits started within one second)."""
    history, config, exits = [], {}, []
    def started(folder):  # (the second, the -n W&B added): the order the fits ran in
        stamp, _, rest = folder.name.removeprefix("offline-run-").partition(f"-{run_id}")
        return stamp, int(rest.removeprefix("-") or 0)
    folders = [*root.glob(f"wandb/offline-run-*-{run_id}"), *root.glob(f"wandb/offline-run-*-{run_id}-*")]
    for path in (f / f"run-{run_id}.wandb" for f in sorted(folders, key=started)):
        for r in read_records(path):
            kind = r.WhichOneof("record_type")
            if kind == "history":
                history.append({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in r.history.item})
            elif kind == "config":
                config.update({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in r.config.update})
            elif kind == "exit": exits.append(r.exit.exit_code)
    return history, config, exits


def run_contents(root, run_id, n_fits, timeout=120):
    """`read_run` once each of the run's `n_fits` fits has its exit record on disk. W&B's service writes the offline
    files in the background and may still be writing when `finish()` returns (read too early, a test saw no
    `fit1/lr`): `wandb.teardown()` waits for it to finish, and the records are then polled for, with a deadline, in
    case a file is still being closed. The records are written in order, so a fit's are all there once its exit is."""
    wandb.teardown()
    deadline = time.monotonic() + timeout
    while True:
        try: contents = read_run(root, run_id)
        except Exception:  # a record cut where the writer is at: read again
            if time.monotonic() > deadline: raise
        else:
            if len(contents[2]) >= n_fits: return contents
            assert time.monotonic() < deadline, f"after {timeout} s the run's files hold {len(contents[2])} of " \
                                                f"{n_fits} fits' exit records: {sorted(root.glob('wandb/*'))}"
        time.sleep(0.05)


@pytest.fixture
def offline(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "cache"))
    yield tmp_path
    wandb.teardown()  # W&B reads its environment once per process: the next test's folder is read afresh


def test_offline_run_files_hold_the_fit(tiny_trainer, offline):
    trainer = tiny_trainer(WandbLoggerCB(project="tiny", hparams={"note": "baseline"}))
    trainer.fit(2, lr=0.1)
    trainer.fit(1, lr=0.01)  # resumes the same run; steps continue
    cb = trainer.WandbLoggerCB
    history, config, exits = run_contents(offline, cb.run_id, n_fits=2)
    assert exits == [0, 0]
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


# ---- issue 21: a resumed fit continues the run; a failed fit exits with code 1 ----
from AIsaac.all import Callback, CheckpointCB  # noqa: E402


class Crash(Callback):
    """Raises `exc` after training batch `at` (epoch, batch)."""

    def __init__(self, at, exc): self.at, self.exc = at, exc

    def after_batch(self, trainer):
        if trainer.training and (trainer.epoch, trainer.batch_num) == self.at: raise self.exc


def test_a_fit_ending_in_an_error_exits_the_run_with_code_1(tiny_trainer, offline):
    trainer = tiny_trainer(WandbLoggerCB(project="tiny"))
    with pytest.raises(ValueError): trainer.fit(2, lr=0.1, callbacks=[Crash((1, 1), ValueError("the data went bad"))])
    trainer.fit(1, lr=0.1)
    *_, exits = run_contents(offline, trainer.WandbLoggerCB.run_id, n_fits=2)
    assert exits == [1, 0]


def test_a_resumed_fit_continues_the_same_run(tiny_trainer, offline):
    ckpt = offline / "ckpt"
    first = tiny_trainer(WandbLoggerCB(project="tiny"), CheckpointCB(ckpt, every_n_batches=1))
    with pytest.raises(KeyboardInterrupt): first.fit(3, lr=0.1, callbacks=[Crash((1, 1), KeyboardInterrupt())])
    run_id = first.WandbLoggerCB.run_id
    again = tiny_trainer(WandbLoggerCB(project="tiny"), CheckpointCB(ckpt, every_n_batches=1))  # a new process's
    again.fit(3, lr=0.1, resume_from=ckpt)
    assert again.WandbLoggerCB.run_id == run_id
    assert len(list(offline.glob("wandb/offline-run-*"))) == 2  # both fits are folders of the one run
    history, config, exits = run_contents(offline, run_id, n_fits=2)
    assert exits == [1, 0]
    epochs = [h for h in history if "epoch" in h]
    assert [h["epoch"] for h in epochs] == [0, 1, 2]  # epoch 0 from the first fit, 1 and 2 from the resumed one
    assert [h["batch"] for h in history if "batch" in h] == list(range(9))
    m = again.MetricsCB
    assert [h["epoch/loss/valid"] for h in epochs] == pytest.approx([lo["valid"] for lo in m.losses_epoch])
