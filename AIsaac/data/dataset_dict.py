"""`sample_dataset_dict`: a quick random subset of each split of a Hugging Face `DatasetDict` (to try things fast)."""
from __future__ import annotations

import random
from typing import Any, Sequence

from ..runtime.args import whole_number


def sample_dataset_dict(dataset_dict: Any, sample_sizes: int | Sequence[int] = (500, 500),
                        seed: int | None = None) -> Any:
    """A `DatasetDict` with a random sample of `sample_sizes[i]` rows (without replacement) of its i-th split.

    Splits go in the dict's order (`train`, then `test` for Fashion-MNIST); splits past the sizes given are kept
    whole; one number samples every split. The samples come from Python's `random` (so `set_seed` fixes them), or
    from `random.Random(seed)` when `seed` is given. Returns a new dict (of the same type); `dataset_dict` is left as
    it is, transforms included (`dd = sample_dataset_dict(dd)`).
    """
    if not hasattr(dataset_dict, "keys") or not hasattr(dataset_dict, "items"):
        raise TypeError(f"sample_dataset_dict takes a DatasetDict (or a dict of datasets); got {type(dataset_dict).__name__}.")
    names = list(dataset_dict.keys())
    sizes = [sample_sizes] * len(names) if isinstance(sample_sizes, int) else list(sample_sizes)
    if len(sizes) > len(names):
        raise ValueError(f"sample_sizes has {len(sizes)} sizes but the DatasetDict has {len(names)} splits ({names}); "
                         f"give at most one size per split.")
    rng = random.Random(seed) if seed is not None else random
    out = {}
    for i, name in enumerate(names):
        split = dataset_dict[name]
        if i >= len(sizes):
            out[name] = split
            continue
        size = whole_number(f"the '{name}' split's sample size", sizes[i], minimum=0, owner="sample_dataset_dict",
                            what="rows to keep")
        if size > len(split):
            raise ValueError(f"sample_dataset_dict: the '{name}' split has {len(split)} rows, so it cannot give a sample "
                             f"of {size}; ask for at most {len(split)}.")
        if not hasattr(split, "select"):
            raise TypeError(f"sample_dataset_dict: the '{name}' split ({type(split).__name__}) has no .select(indices); "
                            f"pass a Hugging Face DatasetDict.")
        out[name] = split.select(rng.sample(range(len(split)), size))
    try: return type(dataset_dict)(out)
    except TypeError: return out
