"""The original AIsaac's notebooks, as their cells are written, on a small sample of Fashion-MNIST: sample the
DatasetDict, build loaders, LSUV-initialise every module, train with hooks, look at the pictures."""
import matplotlib

matplotlib.use("Agg")
import random

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from torch import nn

from AIsaac.all import *  # noqa: F403 (the original's notebooks start this way)
from AIsaac.data.fashion_mnist import fashion_mnist_folder

pytestmark = pytest.mark.skipif(fashion_mnist_folder() is None, reason="needs the Fashion-MNIST files")
xmean, xstd = 0.28, 0.35


@inplace
def transformi(b): b['image'] = [(TF.to_tensor(o) - xmean) / xstd for o in b['image']]


def test_the_original_notebook_cells_run_and_their_numbers_hold():
    raw = fashion_mnist_dataset_dict(n_train=1000, n_test=400)
    _dataset = sample_dataset_dict(raw.with_transform(transformi), (256, 128), seed=0)
    dls = DataLoaders.from_dataset_dict(_dataset, 64)
    xb, yb = next(iter(dls.valid))  # in order: the sample's first rows

    # UnNormalize gives back the pixels / 255 of the very images sampled.
    rng = random.Random(0)
    rng.sample(range(1000), 256)  # the train split's sample comes first
    idx = rng.sample(range(400), 128)[:len(xb)]
    pixels = torch.tensor(np.stack([np.asarray(raw['test'][i]['image']) for i in idx]), dtype=torch.float32) / 255
    torch.testing.assert_close(UnNormalize(xmean, xstd)(xb)[:, 0], pixels, atol=1e-6, rtol=0)
    fig, axs = get_grid(9, title="sample")
    for im, ax, label in zip(UnNormalize(xmean, xstd)(xb[:9]), axs.flat, yb[:9]):
        show_image(im, ax=ax, title=_dataset['test'].features['label'].names[int(label)], cmap='gray')
    assert sum(len(ax.images) for ax in axs.flat) == 9

    # 21_initialization: every module of the model, those without weights left alone.
    model = get_model_conv(nfs=[1, 8, 16])
    for module in model.modules(): lsuv_init(model, module, xb)
    with Hooks([m for m in model.modules() if isinstance(m, nn.Conv2d)], append_stats) as hooks:
        with torch.no_grad(): model(xb)
    for h in hooks[:-1]:  # the hidden convs (with bias): mean 0, std 1 on the batch they were set on
        assert abs(float(h.stats[0][0])) < 1e-3 and abs(float(h.stats[1][0]) - 1) < 1e-3

    # 43_visualization: train with the activation hooks on, then read them.
    trainer = Trainer(dls, nn.CrossEntropyLoss(), torch.optim.SGD, model,
                      callbacks=[DeviceCB('cpu'), BasicTrainCB(), MetricsCB(Accuracy=Accuracy()),
                                 ActivationStatsCB(lambda m: isinstance(m, nn.Conv2d))])
    before = [p.detach().clone() for p in model.parameters()]
    trainer.fit(1, lr=0.1)
    astats = trainer.ActivationStatsCB
    assert len(astats) == 3 and all(len(s) == 4 for s in astats.stats)  # 256 rows / 64 per batch
    for h in astats:
        assert get_hist(h).shape == (40, 4) and ((get_min(h) >= 0) & (get_min(h) <= 1)).all()
    assert astats.color_dim() is not None and all(not m._forward_hooks for m in model.modules())
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert len(trainer.MetricsCB.metrics_epoch) == 1
