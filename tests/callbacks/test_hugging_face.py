"""A Hugging Face model as it comes: dict batches padded by a collate function, an output with `.loss` and `.logits`."""
import contextlib
import io

import datasets
import pytest
import torch
import torch.nn.functional as F
from torcheval.metrics import MulticlassAccuracy

from AIsaac.all import BasicTrainCB, DataLoaders, DeviceCB, MetricsCB, ProgressCB, Trainer

transformers = pytest.importorskip("transformers")
VOCAB, PAD = 50, 0


def token_data(n_train=512, n_valid=128, seed=0):
    """Sequences of 3 to 12 tokens; the label is whether the first token is in the upper half of the vocabulary."""
    g = torch.Generator().manual_seed(seed)
    def split(n):
        lengths = torch.randint(3, 13, (n,), generator=g).tolist()
        ids = [torch.randint(1, VOCAB, (k,), generator=g).tolist() for k in lengths]
        return datasets.Dataset.from_dict({"input_ids": ids, "label": [int(s[0] >= VOCAB // 2) for s in ids]})
    return datasets.DatasetDict({"train": split(n_train), "validation": split(n_valid)})


def pad_collate(items):
    """Pads `input_ids` to the longest in the batch, with the attention mask and `labels` a Hugging Face model takes."""
    longest = max(len(it["input_ids"]) for it in items)
    ids = torch.tensor([it["input_ids"] + [PAD] * (longest - len(it["input_ids"])) for it in items])
    return {"input_ids": ids, "attention_mask": (ids != PAD).long(), "labels": torch.tensor([it["label"] for it in items])}


def tiny_bert():
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=64, max_position_embeddings=16, num_labels=2, pad_token_id=PAD)
    return transformers.BertForSequenceClassification(config)  # random weights: nothing is downloaded


def test_bert_classifier_learns_with_the_models_own_loss_and_get_preds_returns_its_logits():
    dls = DataLoaders.from_dataset_dict(token_data(), 32, inputs=["input_ids"], targets=["label"], collate_fn=pad_collate)
    model = tiny_bert()
    trainer = Trainer(dls, None, torch.optim.AdamW, model,
                      [DeviceCB("cpu"), BasicTrainCB(), MetricsCB(acc=MulticlassAccuracy()), ProgressCB(bars=False)])
    out = io.StringIO()
    with contextlib.redirect_stdout(out): trainer.fit(4, lr=3e-3)
    table = out.getvalue()
    print(table)
    assert table.splitlines()[0].split() == ["epoch", "train", "valid", "acc"] and len(table.splitlines()) == 5

    # The numbers, by hand: the trained model on every validation batch, its own loss weighted by batch size.
    model.eval()
    logits, labels, total = [], [], 0.0
    with torch.no_grad():
        for batch in dls.valid:
            o = model(**batch)
            logits.append(o.logits)
            labels.append(batch["labels"])
            total += o.loss.item() * len(batch["labels"])
    logits, labels = torch.cat(logits), torch.cat(labels)
    acc = (logits.argmax(1) == labels).float().mean().item()
    log = trainer.epoch_log
    assert log["valid"] == pytest.approx(total / len(labels), rel=1e-5)
    assert log["valid"] == pytest.approx(F.cross_entropy(logits, labels).item(), rel=1e-5)
    assert log["acc"] == pytest.approx(acc) and acc > 0.9  # it learnt the rule
    assert trainer.MetricsCB.losses_epoch[-1]["train"] < trainer.MetricsCB.losses_epoch[0]["train"]

    model.train()
    preds, targets = trainer.get_preds()
    assert preds.shape == (128, 2) and torch.equal(targets, labels)  # logits for every validation row
    torch.testing.assert_close(preds, logits)
    assert model.training  # put back
    one = trainer.predict(pad_collate([{"input_ids": [VOCAB - 1, 3, 4], "label": 1}]))
    assert one.shape == (1, 2) and one.argmax(1).item() == 1


def test_without_labels_and_loss_func_the_error_names_both_ways_out():
    dls = DataLoaders.from_dataset_dict(token_data(64, 16), 8, inputs=["input_ids"], collate_fn=pad_collate_no_labels)
    trainer = Trainer(dls, None, torch.optim.AdamW, tiny_bert(), [BasicTrainCB()])
    with pytest.raises(Exception, match=r"get_loss.*loss_func=None.*without one. Pass a loss function to the Trainer.*"
                                        r"give the model its targets"):
        trainer.fit(1)


def pad_collate_no_labels(items):
    batch = pad_collate([{**it, "label": 0} for it in items])
    del batch["labels"]
    return batch


def test_a_loss_func_reads_the_logits_and_the_labels():
    dls = DataLoaders.from_dataset_dict(token_data(64, 16), 8, inputs=["input_ids"], targets=["label"],
                                        collate_fn=pad_collate)
    model = tiny_bert()
    trainer = Trainer(dls, F.cross_entropy, torch.optim.AdamW, model, [BasicTrainCB(), MetricsCB()])
    trainer.fit(1, lr=1e-3, train=False)
    model.eval()
    with torch.no_grad(): own = [(model(**b).loss.item(), len(b["labels"])) for b in dls.valid]
    assert trainer.epoch_log["valid"] == pytest.approx(sum(l * n for l, n in own) / 16, rel=1e-5)
