"""Train with an MLflow run, read the run back, then export the model and check a plain script reproduces it.

    python examples/track_and_export.py --n-train 6000 --out runs/demo
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import torch
import torchvision.transforms.functional as TF
from torch import nn

from AIsaac.all import (Accuracy, CoreCBs, DataLoaders, MLflowLoggerCB, Trainer, fashion_mnist_dataset_dict,
                        get_model_conv, inplace, set_seed)

XMEAN, XSTD = 0.28, 0.35
PREPROCESSING = "pixels / 255, then (x - 0.28) / 0.35; shape (N, 1, 28, 28), float32"


@inplace
def normalize(b): b["image"] = [(TF.to_tensor(o) - XMEAN) / XSTD for o in b["image"]]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--n-train", type=int, default=6000)
    p.add_argument("--n-test", type=int, default=1000)
    p.add_argument("--out", default="aisaac_track", help="folder for the MLflow store and the saved files")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    set_seed(42)
    dd = fashion_mnist_dataset_dict(n_train=args.n_train, n_test=args.n_test).with_transform(normalize)
    dls = DataLoaders.from_dataset_dict(dd, 128)
    mlflow_cb = MLflowLoggerCB(run_name="conv-fashion", tracking_uri=f"sqlite:///{out.resolve()}/mlflow.db",
                               hparams={"n_train": args.n_train})
    trainer = Trainer(dls, nn.CrossEntropyLoss(), torch.optim.AdamW, get_model_conv(norm=nn.BatchNorm2d),
                      callbacks=[CoreCBs(Accuracy=Accuracy()), mlflow_cb])
    trainer.fit(args.epochs, lr=3e-3)
    print("epoch_log:", {k: round(v, 4) if isinstance(v, float) else v for k, v in trainer.epoch_log.items()})

    # ---- the run, read back with MLflow's own client ----
    import mlflow
    client = mlflow.MlflowClient(mlflow_cb.tracking_uri)
    run = client.get_run(mlflow_cb.run_id)
    print(f"\nMLflow run '{run.info.run_name}': {run.info.status}")
    print("params:", {k: run.data.params[k] for k in ("lr", "n_epochs", "opt_func", "batch_size", "n_params", "n_train")})
    for key in ("loss/train", "loss/valid", "metrics/Accuracy", "records/lr", "records/train_time"):
        hist = sorted(client.get_metric_history(run.info.run_id, key), key=lambda m: m.step)
        print(f"{key:20s}", [round(m.value, 4) for m in hist])
    print("loss/train_batch    ", len(client.get_metric_history(run.info.run_id, "loss/train_batch")), "values")

    # ---- save, export, and the exported model in a plain script ----
    trainer.save(out / "model.pt")
    xb, _ = next(iter(dls.valid))
    program = trainer.export(out / "model.pt2", xb[:1], preprocessing=PREPROCESSING)
    n = 8
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the plain script cannot import AIsaac
    script = Path(__file__).with_name("predict_exported.py")
    done = subprocess.run([sys.executable, str(script), str(program), "--n", str(n), "--save", str(out / "logits.pt")],
                          env=env, capture_output=True, text=True, check=True)
    print(f"\n$ python {script.name} {program.name} --n {n}\n{done.stdout}", end="")
    plain = torch.load(out / "logits.pt", weights_only=True)
    test = trainer.dls.test_dl(dd["test"].select(range(n)))
    logits, _ = trainer.get_preds(test)
    names, _ = trainer.get_preds(test, decode=True)
    print("trainer.get_preds(decode=True):", names)
    print(f"max |plain - trainer| over {n}x10 logits: {(plain - logits).abs().max().item():.2e}")
    if not torch.allclose(plain, logits, atol=1e-4): sys.exit("the exported program disagrees with the model")


if __name__ == "__main__":
    main()
