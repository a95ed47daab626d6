"""DataLoaders.from_dataset_dict over Hugging Face DatasetDicts."""
import datasets
import pytest
import torch

from AIsaac.all import DataLoaders, inplace
from AIsaac.data import loaders


def split(n=6):
    columns = {"x": [[float(i)] * 2 for i in range(n)], "y": [i % 2 for i in range(n)]}
    return datasets.Dataset.from_dict(columns).with_format("torch")


def dataset_dict(splits=("train", "test"), n=20):
    feats = datasets.Features({"image": datasets.Sequence(datasets.Value("float32")), "label": datasets.Value("int64")})
    return datasets.DatasetDict({s: datasets.Dataset.from_dict(
        {"image": [[float(i), float(-i)] for i in range(n)], "label": list(range(n))}, features=feats) for s in splits})


@inplace
def to_tensors(b): b["image"] = [torch.tensor(o) * 2 for o in b["image"]]


def test_batches_are_tuples_in_feature_order_train_shuffled_valid_in_order():
    torch.manual_seed(0)
    dls = DataLoaders.from_dataset_dict(dataset_dict().with_transform(to_tensors), 4)
    xb, yb = next(iter(dls.train))
    assert xb.shape == (4, 2) and yb.shape == (4,) and torch.equal(xb[:, 0], yb.float() * 2)
    assert sorted(torch.cat([y for _, y in dls.train]).tolist()) == list(range(20))
    assert torch.cat([y for _, y in dls.train]).tolist() != list(range(20))
    valid = list(dls.valid)
    assert [len(y) for _, y in valid] == [8, 8, 4] and torch.cat([y for _, y in valid]).tolist() == list(range(20))


def test_validation_split_is_preferred_over_test():
    dd = dataset_dict(("train", "validation", "test"))
    dd["validation"] = dd["validation"].select(range(6))
    dls = DataLoaders.from_dataset_dict(dd.with_format("torch"), 2)
    assert len(dls.valid.dataset) == 6


def test_worker_processes_and_dataloader_kwargs(monkeypatch):
    monkeypatch.setattr(loaders, "usable_cores", lambda: 8)  # the two workers asked fit (fewer cores: test_dataset_loader)
    dls = DataLoaders.from_dataset_dict(dataset_dict().with_transform(to_tensors), 5, num_workers=2, drop_last=True)
    ys = torch.cat([y for _, y in dls.train])
    assert sorted(ys.tolist()) == list(range(20)) and dls.train.num_workers == 2


@pytest.mark.parametrize("splits, match", [(("test",), "no 'train' split"),
                                           (("train",), "no validation split.*train_test_split")])
def test_missing_splits_are_explained(splits, match):
    with pytest.raises(ValueError, match=match):
        DataLoaders.from_dataset_dict(dataset_dict(splits), 4)


def test_bad_batch_size_and_conflicting_kwargs():
    with pytest.raises(ValueError, match="batch_size must be"):
        DataLoaders.from_dataset_dict(dataset_dict(), 0)
    with pytest.raises(ValueError, match="sets shuffle itself"):
        DataLoaders.from_dataset_dict(dataset_dict(), 4, shuffle=False)


def test_inplace_returns_its_argument():
    b = {"image": [[1.0]]}
    assert to_tensors(b) is b and torch.equal(b["image"][0], torch.tensor([2.0]))


@pytest.mark.parametrize("name", ["validation", "valid", "test"])
def test_any_validation_split_name_is_used(name):
    dls = DataLoaders.from_dataset_dict(datasets.DatasetDict(train=split(6), **{name: split(4)}), 2)
    x, y = next(iter(dls.valid))
    assert x.shape == (4, 2) and y.tolist() == [0, 1, 0, 1]  # twice the batch size, in order
    assert len(dls.train) == 3


def _image_dd():
    import datasets
    g = torch.Generator().manual_seed(0)
    feats = datasets.Features({"x": datasets.Sequence(datasets.Value("float32"), length=4),
                               "label": datasets.ClassLabel(names=["cat", "dog", "eel"])})
    rows = lambda n: {"x": torch.randn(n, 4, generator=g).tolist(), "label": torch.randint(0, 3, (n,), generator=g).tolist()}
    return datasets.DatasetDict({"train": datasets.Dataset.from_dict(rows(20), features=feats),
                                 "test": datasets.Dataset.from_dict(rows(10), features=feats)})


def _scale(b):  # the training pipeline's transform: x * 10 as a tensor
    b["x"] = [torch.tensor(v) * 10 for v in b["x"]]
    return b


def test_test_dl_reuses_the_training_transform_and_collate_and_takes_unlabelled_data():
    import datasets
    dd = _image_dd()
    dls = DataLoaders.from_dataset_dict(dd.with_transform(_scale), 4)
    new = dd["test"].select(range(7))  # raw rows, without the transform
    dl = dls.test_dl(new)
    xb, yb = next(iter(dl))
    assert len(dl) == 1 and xb.shape == (7, 4) and dl.batch_size == 8  # the validation loader's batch size
    torch.testing.assert_close(xb, torch.tensor(new["x"]) * 10)
    assert yb.tolist() == new["label"]
    unlabelled = datasets.Dataset.from_dict({"x": new["x"]})
    (xb2,) = next(iter(dls.test_dl(unlabelled)))
    torch.testing.assert_close(xb2, xb)
    assert len(next(iter(dls.test_dl(new, with_labels=False)))) == 1


def test_test_dl_for_in_memory_loaders():
    x, y = torch.randn(10, 3), torch.arange(10)
    dls = DataLoaders.from_tensors((x, y), (x, y), batch_size=4)
    dl = dls.test_dl(x[:5])
    assert [b[0].shape[0] for b in dl] == [5] and torch.equal(next(iter(dl))[0], x[:5])
    assert [len(b) for b in dls.test_dl((x, y))] == [2, 2]


def label_first(n=12):
    """A dataset whose label column is declared before its inputs (the declared order would put it first)."""
    return datasets.DatasetDict({s: datasets.Dataset.from_dict(
        {"label": [i % 3 for i in range(n)], "a": [[float(i)] * 2 for i in range(n)], "b": [float(-i) for i in range(n)]})
        for s in ("train", "test")}).with_format("torch")


@pytest.mark.parametrize("in_memory", [False, True])
def test_inputs_and_targets_name_the_columns_and_their_order(in_memory):
    dls = DataLoaders.from_dataset_dict(label_first(), 4, in_memory=in_memory, inputs=["b", "a"], targets=["label"])
    b, a, y = next(iter(dls.valid))
    assert torch.equal(b, -torch.arange(8.)) and torch.equal(a, torch.arange(8.)[:, None].expand(8, 2))
    assert torch.equal(y, torch.arange(8) % 3)


def test_unknown_or_string_columns_are_clear_errors():
    with pytest.raises(ValueError, match=r"no column \['c'\].*its columns: \['label', 'a', 'b'\]"):
        DataLoaders.from_dataset_dict(label_first(), 4, inputs=["c"], targets=["label"])
    with pytest.raises(TypeError, match=r"inputs=\['a'\]"):
        DataLoaders.from_dataset_dict(label_first(), 4, inputs="a", targets=["label"])


def ragged(n=10):
    ids = [list(range(1, 2 + i % 4)) for i in range(n)]
    return datasets.DatasetDict({s: datasets.Dataset.from_dict({"input_ids": ids, "label": [i % 2 for i in range(n)]})
                                 for s in ("train", "test")})


@pytest.mark.parametrize("fmt", [None, "torch"])
def test_variable_length_column_without_a_padding_collate_is_a_clear_error(fmt):
    dls = DataLoaders.from_dataset_dict(ragged().with_format(fmt), 4, inputs=["input_ids"], targets=["label"])
    with pytest.raises(ValueError, match=r"Column 'input_ids' holds sequences of different lengths \(1, 2, 3.*"
                                         r"collate_fn=transformers.DataCollatorWithPadding"):
        next(iter(dls.valid))
    with pytest.raises(ValueError, match=r"Column 'input_ids' holds sequences of different lengths"):
        DataLoaders.from_dataset_dict(ragged().with_format(fmt), 4, in_memory=True, inputs=["input_ids"],
                                      targets=["label"])


def test_a_padding_collate_gets_the_named_columns_and_makes_the_batch():
    transformers = pytest.importorskip("transformers")
    tok = transformers.PreTrainedTokenizerFast(tokenizer_object=__import__("tokenizers").Tokenizer(
        __import__("tokenizers").models.WordLevel({"[PAD]": 0, "[UNK]": 1}, unk_token="[UNK]")), pad_token="[PAD]")
    dd = ragged().map(lambda r: {"other": 1})
    dls = DataLoaders.from_dataset_dict(dd, 4, inputs=["input_ids"], targets=["label"],
                                        collate_fn=transformers.DataCollatorWithPadding(tok))
    batch = next(iter(dls.valid))
    assert set(batch) == {"input_ids", "attention_mask", "labels"}  # 'other' left out; 'label' renamed by the collator
    assert batch["input_ids"][:4].tolist() == [[1, 0, 0, 0], [1, 2, 0, 0], [1, 2, 3, 0], [1, 2, 3, 4]]
    assert batch["attention_mask"].sum(1).tolist() == [1, 2, 3, 4] * 2 and batch["labels"].tolist() == [0, 1] * 4


# ---- issue 21: test_dl, get_preds and validate on every loader kind ----
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from AIsaac.all import BasicTrainCB, MetricsCB, Trainer  # noqa: E402


def _rows(n, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 4, generator=g), torch.randint(0, 3, (n,), generator=g)


def _hf(x, y=None):
    feats = {"x": datasets.Sequence(datasets.Value("float32"), length=4)}
    cols = {"x": x.tolist()}
    if y is not None: feats["label"], cols["label"] = datasets.ClassLabel(names=["a", "b", "c"]), y.tolist()
    return datasets.Dataset.from_dict(cols, features=datasets.Features(feats))


def _loaders(kind):
    (xt, yt), (xv, yv) = _rows(24, 0), _rows(12, 1)
    if kind == "TensorLoader": return DataLoaders.from_tensors((xt, yt), (xv, yv), batch_size=4)
    if kind == "DataLoader": return DataLoaders(DataLoader(TensorDataset(xt, yt), batch_size=4, shuffle=True),
                                                DataLoader(TensorDataset(xv, yv), batch_size=8))
    dd = datasets.DatasetDict({"train": _hf(xt, yt), "validation": _hf(xv, yv)}).with_format("torch")
    return DataLoaders.from_dataset_dict(dd, 4, in_memory=kind == "HF in memory")


KINDS = ["TensorLoader", "DataLoader", "HF", "HF in memory"]


def _test_sets(kind):
    """The new data, unlabelled and labelled, as a user of that loader kind has it: {name: (data, labelled)}."""
    x, y = _rows(20, 2)
    if kind.startswith("HF"):
        fmt = lambda d: d.with_format("torch")
        return x, y, {"HF inputs only": (fmt(_hf(x)), False), "HF labelled": (fmt(_hf(x, y)), True)}
    return x, y, {"TensorDataset(x)": (TensorDataset(x), False), "TensorDataset(x, y)": (TensorDataset(x, y), True),
                  "tensor x": (x, False), "array x": (x.numpy(), False), "(x,)": ((x,), False), "(x, y)": ((x, y), True)}


@pytest.mark.parametrize("kind", KINDS)
def test_test_dl_get_preds_and_validate_on_every_loader_kind(kind):
    """Issue 21: dls.test_dl(TensorDataset(x)) on in-memory loaders gave 1 prediction for 20 rows, and validate on it
    failed with `CrossEntropyLoss.forward() takes 3 positional arguments but 21 were given`."""
    torch.manual_seed(0)
    trainer = Trainer(_loaders(kind), nn.CrossEntropyLoss(), torch.optim.SGD, nn.Linear(4, 3),
                      [BasicTrainCB(), MetricsCB()])
    trainer.fit(1, lr=0.1)
    x, y, sets = _test_sets(kind)
    with torch.no_grad(): expected = trainer.model.eval()(x)
    for name, (data, labelled) in sets.items():
        dl = trainer.dls.test_dl(data)
        assert sum(len(b[0]) if isinstance(b, (tuple, list)) else len(b) for b in dl) == 20, name
        preds, no_targets = trainer.get_preds(dl, with_targets=False)
        assert preds.shape == (20, 3) and no_targets is None, name
        torch.testing.assert_close(preds, expected, msg=name)
        if labelled:
            preds, targets = trainer.get_preds(dl)
            assert torch.equal(targets, y), name
            got = trainer.validate(dl)["valid"]
            assert got == pytest.approx(nn.functional.cross_entropy(expected, y).item(), abs=1e-5), name
            assert len(list(trainer.dls.test_dl(data, with_labels=False))[0]) == 1, name
        else:
            with pytest.raises(TypeError) as info: trainer.validate(dl)
            message = str(info.value)
            assert "no targets" in message and "get_preds(dl, with_targets=False)" in message, (name, message)
            preds, targets = trainer.get_preds(dl)  # issue 33: a test_dl loader knows it may have no targets
            assert targets is None and torch.equal(preds, trainer.get_preds(dl, with_targets=False).preds), name
            with pytest.raises(ValueError, match="with_targets=False"): trainer.get_preds(dl, with_targets=True)


def test_in_memory_hf_test_dl_uses_the_training_columns_and_transform():
    """A split read whole for in-memory loaders goes through the training split's transform, in its column order."""
    dd = label_first().with_format(None)
    scaled = dd.with_transform(lambda b: {k: torch.tensor(v) * (10 if k == "b" else 1) for k, v in b.items()})
    dls = DataLoaders.from_dataset_dict(scaled, 4, in_memory=True, inputs=["b", "a"], targets=["label"])
    new = dd["test"].select(range(5))  # raw rows, without the transform
    b, a, label = next(iter(dls.test_dl(new)))
    torch.testing.assert_close(b, torch.tensor(new["b"]) * 10)
    torch.testing.assert_close(a, torch.tensor(new["a"]))
    assert label.tolist() == new["label"]
    unlabelled = datasets.Dataset.from_dict({"a": new["a"], "b": new["b"]})
    assert [t.shape for t in next(iter(dls.test_dl(unlabelled)))] == [(5,), (5, 2)]  # the two inputs, in order


def test_in_memory_test_dl_refuses_data_unlike_the_validation_data():
    x, y = torch.randn(10, 3), torch.arange(10)
    dls = DataLoaders.from_tensors((x, y), (x, y), batch_size=4)
    with pytest.raises(ValueError, match=r"shape \(5, 2\).*validation data.*\(3,\)"): dls.test_dl(torch.randn(5, 2))
    with pytest.raises(ValueError, match="uint8.*float32"): dls.test_dl((x * 100).to(torch.uint8))


# ---- issue 33: predictions on new data ----
def test_test_dl_keeps_the_padding_collate_fn_and_predicts_on_unlabelled_text():
    """Issue 33: test_dl dropped from_dataset_dict's collate_fn, so a padding pipeline could not predict on its
    unlabelled test set (a ragged column error that told the user to pass the collator they had passed)."""
    transformers = pytest.importorskip("transformers")
    tok = transformers.PreTrainedTokenizerFast(tokenizer_object=__import__("tokenizers").Tokenizer(
        __import__("tokenizers").models.WordLevel({"[PAD]": 0, "[UNK]": 1}, unk_token="[UNK]")), pad_token="[PAD]")
    dls = DataLoaders.from_dataset_dict(ragged(), 4, inputs=["input_ids"], targets=["label"],
                                        collate_fn=transformers.DataCollatorWithPadding(tok))
    unlabelled = ragged()["test"].remove_columns("label")
    batch = next(iter(dls.test_dl(unlabelled)))
    assert set(batch) == {"input_ids", "attention_mask"} and batch["attention_mask"].sum(1).tolist() == [1, 2, 3, 4] * 2

    class Bag(nn.Module):
        def __init__(self): super().__init__(); self.emb = nn.EmbeddingBag(8, 2, mode="sum")
        def forward(self, input_ids, attention_mask, labels=None):
            return self.emb(input_ids, per_sample_weights=attention_mask.float())
    trainer = Trainer(dls, nn.CrossEntropyLoss(), torch.optim.SGD, Bag(), [BasicTrainCB()])
    preds, targets = trainer.get_preds(dls.test_dl(unlabelled))
    assert preds.shape == (len(unlabelled), 2) and targets is None


def test_from_tensors_without_validation_data():
    """Issue 33: from_tensors(train, None, bs) raised a raw TypeError, where DataLoaders(train, None) works."""
    x, y = torch.randn(12, 3), torch.arange(12) % 2
    dls = DataLoaders.from_tensors((x, y), None, batch_size=4)
    assert dls.valid is None and len(dls.train) == 3
    trainer = Trainer(dls, nn.CrossEntropyLoss(), torch.optim.SGD, nn.Linear(3, 2), [BasicTrainCB(), MetricsCB()])
    trainer.fit(1)
    assert "train" in trainer.epoch_log and "valid" not in trainer.epoch_log
    with pytest.raises(TypeError, match=r"a tuple like \(x, y\)"): DataLoaders.from_tensors(x, None, batch_size=4)


def test_hf_label_column_first_is_named_not_fed_to_the_model():
    """Issue 33: a dataset whose ClassLabel column comes first gave its labels to the model as input (a raw dtype
    error in the model); the default column order now refuses it, naming inputs=/targets=."""
    feats = datasets.Features({"label": datasets.ClassLabel(names=["a", "b"]),
                               "x": datasets.Sequence(datasets.Value("float32"), length=2)})
    ds = datasets.Dataset.from_dict({"label": [0, 1] * 4, "x": [[1.0, 2.0]] * 8}, features=feats)
    dd = datasets.DatasetDict({"train": ds, "test": ds}).with_format("torch")
    for in_memory in (False, True):
        with pytest.raises(ValueError, match=r"inputs=\['x'\], targets=\['label'\]"):
            DataLoaders.from_dataset_dict(dd, 4, in_memory=in_memory)
        xb, yb = next(iter(DataLoaders.from_dataset_dict(dd, 4, in_memory=in_memory, inputs=["x"], targets=["label"]).train))
        assert xb.shape == (4, 2) and yb.dtype == torch.int64


def test_hf_dataset_without_a_format_is_named_with_the_fix():
    """Issue 33: a split without torch format batched its list column as a list of per-position tensors (the model
    then failed on a list), or as float64 in memory; now the error names with_format('torch')."""
    feats = datasets.Features({"x": datasets.Sequence(datasets.Value("float32"), length=2),
                               "label": datasets.ClassLabel(names=["a", "b"])})
    ds = datasets.Dataset.from_dict({"x": [[1.0, 2.0]] * 8, "label": [0, 1] * 4}, features=feats)
    dd = datasets.DatasetDict({"train": ds, "test": ds})
    for in_memory in (False, True):
        with pytest.raises(ValueError, match=r"with_format\('torch'\)"): DataLoaders.from_dataset_dict(dd, 4, in_memory=in_memory)
    xb, yb = next(iter(DataLoaders.from_dataset_dict(dd.with_format("torch"), 4).train))
    assert xb.shape == (4, 2)
