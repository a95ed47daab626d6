"""`aisaac demo`'s job: the tutorial's conv net trained with CoreCBs on Fashion-MNIST when its files are there, else on
scikit-learn's digits, with its plots saved; the images normalised as the tutorial does."""
import numpy as np
import pytest
import torch

import AIsaac.data.fashion_mnist as fm
from AIsaac.demo import XMEAN, XSTD, load_demo_data, normalize_images, run_demo

pytest.importorskip("sklearn")


@pytest.fixture
def no_fashion_mnist(tmp_path, monkeypatch):
    monkeypatch.setattr(fm, "DEFAULT_FOLDER", str(tmp_path / "none"))
    monkeypatch.delenv("FASHION_MNIST_DIR", raising=False)


def test_images_are_normalised_as_the_tutorials_to_tensor_then_mean_and_std():
    TF = pytest.importorskip("torchvision.transforms.functional")
    from PIL import Image
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8))
    got = normalize_images({"image": [img]})["image"][0]
    torch.testing.assert_close(got, (TF.to_tensor(img) - XMEAN) / XSTD)  # the seed tutorial's transformi
    assert got.shape == (1, 28, 28)


def test_demo_on_digits_when_fashion_mnist_is_absent(tmp_path, no_fashion_mnist, capsys):
    trainer = run_demo(out=str(tmp_path / "out"), epochs=2)
    out = capsys.readouterr().out
    assert "scikit-learn's handwritten digits" in out and "apt-get install dataset-fashion-mnist" in out
    assert "1438 training and 359 test images" in out  # 1,797 digits, a fifth held out
    rows = [l for l in out.splitlines() if l[:1].isdigit()]
    assert len(rows) == 2 and float(rows[-1].split()[-1]) == pytest.approx(trainer.epoch_log["Accuracy"], abs=1e-6)
    assert trainer.epoch_log["Accuracy"] > 0.5  # on 10 digits after 2 short epochs
    for name in ("losses", "color_dim", "plot_stats", "dead_chart"):
        assert (tmp_path / "out" / f"{name}.png").stat().st_size > 1000


def test_n_train_and_n_test_keep_the_first_rows_of_the_digits(no_fashion_mnist):
    dd, what = load_demo_data(None, 300, 50)
    full, _ = load_demo_data(None)
    assert (len(dd["train"]), len(dd["test"])) == (300, 50) and "digits" in what
    assert dd["train"]["label"] == full["train"]["label"][:300] and dd["test"]["label"] == full["test"]["label"][:50]


def test_a_folder_without_the_files_says_which_files_it_needs(tmp_path):
    with pytest.raises(FileNotFoundError, match="No Fashion-MNIST idx files in .*train-images-idx3-ubyte.gz"):
        load_demo_data(str(tmp_path))


@pytest.mark.skipif(fm.fashion_mnist_folder() is None, reason="Fashion-MNIST files not installed (CI installs them)")
def test_demo_on_fashion_mnist(tmp_path, capsys):
    run_demo(out=str(tmp_path), epochs=1, n_train=2000)
    assert "Fashion-MNIST from" in capsys.readouterr().out


@pytest.mark.skipif(fm.fashion_mnist_folder() is None, reason="Fashion-MNIST files not installed (CI installs them)")
def test_n_test_on_fashion_mnist():
    dd, _ = load_demo_data(None, 500, 200)
    assert (len(dd["train"]), len(dd["test"])) == (500, 200)
