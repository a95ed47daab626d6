"""digits_dataset_dict: every one of scikit-learn's 1,797 digits once, with its label, as a 28x28 image at
Fashion-MNIST's 0-255 scale; the test split is the fraction asked for, drawn by the seed."""
import numpy as np
import pytest

from AIsaac.all import digits_dataset_dict

pytest.importorskip("sklearn")
pytest.importorskip("datasets")


def test_every_digit_once_with_its_label_upscaled_to_28x28_at_0_to_255():
    from sklearn.datasets import load_digits
    d = load_digits()
    dd = digits_dataset_dict()
    assert (len(dd["train"]), len(dd["test"])) == (1438, 359)  # 1,797 with a fifth held out
    assert dd["train"].features["label"].names == [str(i) for i in range(10)]
    images = [np.asarray(im, dtype=np.float64) for split in ("train", "test") for im in dd[split]["image"]]
    labels = np.array([l for split in ("train", "test") for l in dd[split]["label"]])
    assert {im.shape for im in images} == {(28, 28)} and max(im.max() for im in images) > 240
    assert (np.bincount(labels) == np.bincount(d.target)).all()
    # Each digit's image is its 8x8 original upscaled (x 255/16): per label, the images' mean brightnesses are the
    # originals', one for one (bilinear upscaling keeps a mean to within a fraction of a grey level).
    means = np.array([im.mean() for im in images])
    original = d.images.reshape(len(d.images), -1).mean(1) * 255 / 16
    for digit in range(10):
        np.testing.assert_allclose(np.sort(means[labels == digit]), np.sort(original[d.target == digit]), atol=0.5)


def test_the_seed_draws_the_split_and_the_fraction_sizes_it():
    labels = lambda dd, split: list(dd[split]["label"])
    a, b, c = digits_dataset_dict(seed=0), digits_dataset_dict(seed=0), digits_dataset_dict(test_fraction=0.5, seed=1)
    assert labels(a, "test") == labels(b, "test") and len(c["test"]) == 898
    assert sorted(labels(a, "test") + labels(a, "train")) == sorted(labels(c, "test") + labels(c, "train"))
    assert labels(a, "test")[:50] != labels(c, "test")[:50]
