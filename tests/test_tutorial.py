"""The seed tutorial's code, end to end, on a small DatasetDict with an Image feature made here."""
import re

import datasets
import numpy as np
import pytest
from PIL import Image

torchvision = pytest.importorskip("torchvision")
import torchvision.transforms.functional as TF  # noqa: E402
from torcheval.metrics import MulticlassAccuracy  # noqa: E402

from AIsaac.all import *  # noqa: E402,F403
import torch  # noqa: E402
from torch import nn  # noqa: E402


def image_dataset_dict(n_train=640, n_test=256, seed=0):
    """Ten classes of 28x28 grey images: class k is a bright horizontal band at row 2k+4, plus noise."""
    rng = np.random.default_rng(seed)

    def split(n):
        labels = rng.integers(0, 10, n)
        imgs = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
        for im, k in zip(imgs, labels): im[2 * k + 4: 2 * k + 7] = 230
        return datasets.Dataset.from_dict({"image": [Image.fromarray(im) for im in imgs], "label": labels.tolist()},
                                          features=datasets.Features({"image": datasets.Image(),
                                                                      "label": datasets.ClassLabel(num_classes=10)}))
    return datasets.DatasetDict({"train": split(n_train), "test": split(n_test)})


xmean, xstd = 0.28, 0.35


@inplace
def transformi(b): b['image'] = [(TF.to_tensor(o) - xmean) / xstd for o in b['image']]


def table_rows(out):
    return [l for l in out.splitlines() if re.match(r"\s*\d+\s+[0-9.]+\s+[0-9.]+\s+[0-9.]+\s*$", l)]


def test_from_dataset_dict_with_an_image_feature_and_two_workers():
    dls = DataLoaders.from_dataset_dict(image_dataset_dict(64, 40).with_transform(transformi), 16, num_workers=2)
    xb, yb = next(iter(dls.train))
    assert xb.shape == (16, 1, 28, 28) and xb.dtype == torch.float32 and yb.dtype == torch.int64
    assert sum(len(y) for _, y in dls.valid) == 40 and [len(y) for _, y in dls.valid] == [32, 8]


def test_tutorial_end_to_end(capsys):
    set_seed(42)
    _dataset = image_dataset_dict().with_transform(transformi)
    dls = DataLoaders.from_dataset_dict(_dataset, 64, num_workers=2)
    trainer = Trainer(dls, nn.CrossEntropyLoss(), torch.optim.Adam, model=get_model_conv(),
                      callbacks=[BasicTrainCB(), MetricsCB(Accuracy=MulticlassAccuracy()), DeviceCB(), ProgressCB()])
    trainer.fit()
    out = capsys.readouterr().out
    assert re.search(r"\btrain\b.*\bvalid\b.*\bAccuracy\b", out) and len(table_rows(out)) == 3
    acc = [m["Accuracy"] for m in trainer.MetricsCB.metrics_epoch]
    assert len(acc) == 3 and acc[-1] > 0.5  # chance is 0.1

    trainer = Trainer(dls, nn.CrossEntropyLoss(), torch.optim.Adam, get_model_conv(),
                      callbacks=[CoreCBs(Accuracy=MulticlassAccuracy())])
    trainer.fit()
    assert len(table_rows(capsys.readouterr().out)) == 3
    for cls in (DeviceCB, BasicTrainCB, MetricsCB, ProgressCB, ActivationStatsCB):
        assert isinstance(getattr(trainer, cls.__name__), cls)
    assert trainer.ActivationStatsCB.color_dim() is not None

    view_source_code(MomentumTrainCB)
    assert "class MomentumTrainCB(BasicTrainCB)" in capsys.readouterr().out
