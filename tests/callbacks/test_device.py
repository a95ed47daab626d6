"""DeviceCB moves the model once per fit and each batch, whatever its nesting."""
from types import SimpleNamespace

import torch
from torch import nn

from AIsaac.all import DeviceCB, def_device


def test_moves_model_and_nested_batch():
    cb = DeviceCB("meta")  # a real second device on any machine; tensors there have shapes but no data
    model = nn.Linear(2, 2)
    trainer = SimpleNamespace(model=model, batch=(torch.ones(3, 2), [torch.zeros(3)], {"m": torch.ones(1)}, "id"))
    cb.before_fit(trainer)
    assert model.weight.device.type == "meta"
    cb.before_batch(trainer)
    x, (y,), d, s = trainer.batch
    assert (x.device.type, y.device.type, d["m"].device.type, s) == ("meta", "meta", "meta", "id")


def test_default_device_and_order():
    assert DeviceCB().device == torch.device(def_device)
    assert DeviceCB.order < 0  # moves the batch before other before_batch callbacks read it


def test_model_without_to_is_left_alone():
    trainer = SimpleNamespace(model=lambda x: x)
    DeviceCB("cpu").before_fit(trainer)


def test_on_the_cpu_a_batch_already_there_is_passed_on_as_it_is_and_any_other_is_moved():
    cb = DeviceCB("cpu")
    x, y = torch.ones(3, 2), torch.zeros(3)
    for batch in ((x, y), [x, y], {"x": x, "labels": y}):
        trainer = SimpleNamespace(batch=batch)
        cb.before_batch(trainer)
        assert trainer.batch is batch  # no copy, no new container: nothing had to move
    # Anything else goes through to_device: nested containers and non-tensor leaves come back rebuilt, equal.
    for batch in ((x, [y]), {"x": x, "id": "a"}, (x, "a")):
        trainer = SimpleNamespace(batch=batch)
        cb.before_batch(trainer)
        assert trainer.batch is not batch and type(trainer.batch) is type(batch) and repr(trainer.batch) == repr(batch)
    meta = DeviceCB("meta")
    trainer = SimpleNamespace(batch=(x, y))
    meta.before_batch(trainer)  # another device: always moved
    assert [t.device.type for t in trainer.batch] == ["meta", "meta"]


def test_with_no_accelerator_in_the_process_cpu_batches_are_passed_on_unlooked_at(monkeypatch):
    from AIsaac.callbacks import device
    x = torch.ones(3, 2)
    batch = (x, "an id")  # a batch the per-batch check would send through to_device (a non-tensor leaf)
    for only_cpu, passed_as_it_is in ((True, True), (False, False)):
        monkeypatch.setattr(device, "only_cpu_tensors", lambda: only_cpu)
        cb, trainer = DeviceCB("cpu"), SimpleNamespace(model=nn.Linear(2, 2), batch=batch)
        cb.before_fit(trainer)  # where it asks, once a fit
        cb.before_batch(trainer)
        assert (trainer.batch is batch) is passed_as_it_is and trainer.batch == batch
    monkeypatch.setattr(device, "only_cpu_tensors", lambda: True)
    meta, trainer = DeviceCB("meta"), SimpleNamespace(model=nn.Linear(2, 2), batch=(x,))
    meta.before_fit(trainer)
    meta.before_batch(trainer)  # another device: always moved
    assert trainer.batch[0].device.type == "meta"
