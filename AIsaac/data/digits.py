"""scikit-learn's handwritten digits, upscaled to 28x28, as a `DatasetDict` shaped like Fashion-MNIST's."""
from __future__ import annotations


def digits_dataset_dict(test_fraction: float = 0.2, seed: int = 0):
    """1,797 8x8 digits from scikit-learn (shipped with it, no download) as 28x28 PIL images; 'train' and 'test'."""
    try: from sklearn.datasets import load_digits
    except ImportError as e:
        raise ImportError("The digits dataset comes with scikit-learn: pip install scikit-learn "
                          "(or pip install 'aisaac[demo]').") from e
    import numpy as np

    from .fashion_mnist import hf_modules
    datasets, Image = hf_modules("digits_dataset_dict")
    d = load_digits()
    imgs = [Image.fromarray((im * (255 / 16)).astype(np.uint8)).resize((28, 28), Image.BILINEAR) for im in d.images]
    order = np.random.default_rng(seed).permutation(len(imgs))
    n_test = int(len(imgs) * test_fraction)
    features = datasets.Features({"image": datasets.Image(),
                                  "label": datasets.ClassLabel(names=[str(i) for i in range(10)])})

    def split(idx): return datasets.Dataset.from_dict(
        {"image": [imgs[i] for i in idx], "label": [int(d.target[i]) for i in idx]}, features=features)
    return datasets.DatasetDict({"train": split(order[n_test:]), "test": split(order[:n_test])})
