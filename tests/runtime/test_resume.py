"""Resuming: the setup and state checks against the saved run, the run id, the restore and the replay of an epoch."""
import multiprocessing
import random
import re

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from AIsaac.all import (BasicTrainCB, Callback, CheckpointCB, CheckpointError, DataLoaders, MetricsCB, TensorLoader,
                        Trainer, set_seed)
from AIsaac.data.dataset_loader import DatasetLoader
from AIsaac.runtime.checkpoint_file import checkpoint_files
from AIsaac.runtime.resume import check_setup, fit_setup, prepare_resume
from tests.helpers.small_fit import ScaleCB, make_trainer


@pytest.fixture
def saved(tmp_path):
    """A folder holding the checkpoint of a one-epoch fit (with a ScaleCB whose scale was 3)."""
    make_trainer(callbacks=[ScaleCB(3.0)]).fit(1, lr=0.1, callbacks=[CheckpointCB(tmp_path)])
    return tmp_path


def test_empty_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="No checkpoint in"): make_trainer().fit(1, resume_from=tmp_path)


def test_model_of_another_shape_is_refused_naming_the_keys(saved):
    wider = nn.Sequential(nn.Linear(4, 7), nn.ReLU(), nn.Linear(7, 2))
    trainer = make_trainer(model=wider, callbacks=[ScaleCB()])
    before = [p.detach().clone() for p in wider.parameters()]
    with pytest.raises(CheckpointError, match=r"shape mismatch: 0\.weight \(saved \(5, 4\), model \(7, 4\)\)"):
        trainer.fit(1, resume_from=saved)
    for a, b in zip(before, wider.parameters()): assert torch.equal(a, b)  # refused before anything changed
    assert trainer.opt is None


def test_model_with_other_layers_is_refused_naming_the_keys(saved):
    deeper = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 2), nn.Linear(2, 2))
    with pytest.raises(CheckpointError, match="missing keys: 3.weight, 3.bias"):
        make_trainer(model=deeper, callbacks=[ScaleCB()]).fit(1, resume_from=saved)
    other = nn.Sequential(nn.Linear(4, 2))
    with pytest.raises(CheckpointError, match="unexpected keys: 2.weight, 2.bias"):
        make_trainer(model=other, callbacks=[ScaleCB()]).fit(1, resume_from=saved)


def test_callback_state_is_restored_by_name(saved):
    trainer = make_trainer(callbacks=[ScaleCB(1.0)])
    trainer.fit(2, lr=0.1, resume_from=saved, allow_changes=("n_epochs",))  # one more epoch than saved: allowed
    assert trainer.ScaleCB.scale == 3.0


def test_callbacks_with_state_must_match(saved):
    with pytest.raises(CheckpointError, match="callbacks: missing ScaleCB.*allow_changes=\\('callbacks',\\)"):
        make_trainer().fit(1, lr=0.1, resume_from=saved)

    class OtherCB(ScaleCB): pass

    with pytest.raises(CheckpointError, match="callbacks: new OtherCB"):
        make_trainer(callbacks=[ScaleCB(), OtherCB()]).fit(1, lr=0.1, resume_from=saved)
    with pytest.raises(CheckpointError, match="does not hold: OtherCB"):  # a fit-only callback with state
        make_trainer(callbacks=[ScaleCB()]).fit(1, lr=0.1, resume_from=saved, callbacks=[OtherCB()])


def test_optimizer_of_another_kind_is_a_clear_error(saved):
    trainer = make_trainer(callbacks=[ScaleCB()])
    trainer.opt_func = lambda params, lr: torch.optim.SGD([{"params": list(params)[:2]}, {"params": []}], lr=lr)
    with pytest.raises(CheckpointError, match="number of param groups: saved 1, now 2"):
        trainer.fit(1, lr=0.1, resume_from=saved)
    with pytest.raises(CheckpointError, match="optimizer state does not fit"):
        trainer.fit(1, lr=0.1, resume_from=saved, allow_changes=("opt",))


def test_train_loader_shorter_than_the_checkpoint_position(tmp_path):
    trainer = make_trainer(n=16)
    trainer.fit(1, lr=0.1, callbacks=[CheckpointCB(tmp_path, every_n_batches=3, every_epoch=False)])
    short = make_trainer(n=8)
    with pytest.raises(CheckpointError, match="batches per epoch: saved 4, now 2"):
        short.fit(1, lr=0.1, resume_from=tmp_path)
    with pytest.raises(CheckpointError, match="saved 3 batches into an epoch, but the train loader now has only 2"):
        short.fit(1, lr=0.1, resume_from=tmp_path, allow_changes=("batch_size",))


def test_prepare_resume_keeps_the_saved_runs_id_and_gives_a_new_fit_a_new_one(saved):
    trainer = make_trainer(callbacks=[ScaleCB()])
    opt = torch.optim.SGD(trainer.model.parameters(), lr=0.1)
    setup = fit_setup(trainer, 1, opt)
    checkpoint, run_id = prepare_resume(trainer, saved, setup, ())
    assert checkpoint_files(saved)[-1].name.endswith(f"-{run_id}.pt") and checkpoint["setup"]["run_id"] == run_id
    assert checkpoint["position"] == {"epoch": 1, "batch": 0, "loader_rng": None, "fetch_rng": None, "n_epochs": 1,
                                      "step": 4}
    none, new = prepare_resume(trainer, None, setup, ())
    assert none is None and re.fullmatch(r"[0-9a-f]{8}", new) and new != run_id
    assert prepare_resume(trainer, None, setup, ())[1] != new
    with pytest.raises(CheckpointError, match=r"n_epochs: saved 1, now 2"):
        prepare_resume(trainer, saved, fit_setup(trainer, 2, opt), ())


def test_fit_setup_records_what_a_resume_compares():
    trainer = make_trainer(callbacks=[ScaleCB()])
    opt = torch.optim.SGD(trainer.model.parameters(), lr=0.1, momentum=0.9)
    extra = CheckpointCB("unused")
    setup = fit_setup(trainer, 3, opt, fit_only=[extra])
    assert setup["n_epochs"] == 3 and setup["batch_size"] == 4 and setup["train_batches"] == 4
    assert setup["opt"] == "torch.optim.sgd.SGD" and setup["hparams"][0]["momentum"] == 0.9
    assert setup["callbacks"] == ["BasicTrainCB", "ScaleCB"]
    check_setup(setup, setup)  # the same setup: nothing to report
    with pytest.raises(ValueError, match="allow_changes names \\['epochs'\\]; it takes any of n_epochs"):
        check_setup(setup, setup, allow=("epochs",))
    lower = {**setup, "hparams": [{**setup["hparams"][0], "lr": 0.01}]}
    with pytest.raises(CheckpointError, match="param group 0 lr: saved 0.1, now 0.01.*allow_changes=\\('lr',\\)"):
        check_setup(setup, lower)
    check_setup(setup, lower, allow="lr")


# ---- what changes training: which parameters train, a schedule's length, a callback's state ----
def test_a_frozen_run_resumed_unfrozen_is_refused_unless_allowed(tmp_path):
    t = make_trainer(callbacks=[ScaleCB()])
    t.model[0].requires_grad_(False)  # the first layer frozen, as freeze() does with a splitter
    t.fit(1, lr=0.1, callbacks=[CheckpointCB(tmp_path)])
    unfrozen = make_trainer(callbacks=[ScaleCB()])
    before = [p.detach().clone() for p in unfrozen.model.parameters()]
    with pytest.raises(CheckpointError, match=r"frozen parameters \(requires_grad=False\): saved 2, now 0; frozen "
                                              r"then, training now: 0\.bias, 0\.weight.*allow_changes=\('frozen',\)"):
        unfrozen.fit(1, lr=0.1, resume_from=tmp_path)
    assert all(torch.equal(a, b) for a, b in zip(before, unfrozen.model.parameters()))  # nothing changed
    unfrozen.fit(1, lr=0.1, resume_from=tmp_path, allow_changes=("frozen",))  # meant: accepted


def test_a_schedule_sized_by_the_fit_refuses_a_resume_of_another_length(tmp_path):
    from AIsaac.all import OneCycleSchedulerCB
    make_trainer(callbacks=[OneCycleSchedulerCB()]).fit(2, lr=0.1, callbacks=[CheckpointCB(tmp_path)])
    longer = make_trainer(callbacks=[OneCycleSchedulerCB()])
    with pytest.raises(CheckpointError, match=r"length changed \(n_epochs: saved 2, now 3\), but OneCycleSchedulerCB "
                                              r"spread its schedule over the saved length.*Nothing was changed"):
        longer.fit(3, lr=0.1, resume_from=tmp_path, allow_changes=("n_epochs",))
    plain = make_trainer(callbacks=[ScaleCB()])
    plain.fit(2, lr=0.1, callbacks=[CheckpointCB(tmp_path / "plain")])
    make_trainer(callbacks=[ScaleCB()]).fit(3, lr=0.1, resume_from=tmp_path / "plain", allow_changes=("n_epochs",))


def test_a_callback_whose_state_keys_changed_is_named_with_the_keys(saved):
    class ScaleCB2(ScaleCB):  # the same callback, a later version that renamed its state
        def state_dict(self): return {"factor": self.scale}
        def load_state_dict(self, state): self.scale = state["factor"]
    ScaleCB2.__name__ = "ScaleCB"
    with pytest.raises(CheckpointError, match=r"holds ScaleCB's state with keys 'scale', but this ScaleCB keeps "
                                              r"'factor'.*Nothing was changed"):
        make_trainer(callbacks=[ScaleCB2()]).fit(1, lr=0.1, resume_from=saved)

    class DuringFit(ScaleCB):  # whose state exists only once a fit runs: found as it loads
        def state_dict(self): return {"factor": self.factor}
        def load_state_dict(self, state): self.factor = state["factor"]
    DuringFit.__name__ = "ScaleCB"
    with pytest.raises(CheckpointError, match=r"ScaleCB.load_state_dict could not load the state the checkpoint holds "
                                              r"for it \(keys 'scale'\): KeyError: 'factor'"):
        make_trainer(callbacks=[DuringFit()]).fit(1, lr=0.1, resume_from=saved)


# ---- resuming in time independent of the position: skipping at the sampler, restoring a stream's state ----
class Augmented(torch.utils.data.Dataset):
    """Map-style data whose items draw from torch, NumPy and `random` (a random augmentation); `loads` counts the
    items loaded, in whichever process loads them."""

    def __init__(self, n=40, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.x, self.y = torch.randn(n, 4, generator=g), torch.randint(0, 2, (n,), generator=g)
        self.loads = multiprocessing.get_context("fork").Value("i", 0)

    def __len__(self): return len(self.x)

    def __getitem__(self, i):
        with self.loads.get_lock(): self.loads.value += 1
        return self.x[i] + 0.1 * torch.randn(4) + 0.1 * float(np.random.randn()) + 0.1 * random.random(), self.y[i]


class Stream(torch.utils.data.IterableDataset):
    """A stream of `n` augmented items, shuffled anew each pass, whose position is a state (`state_dict`)."""

    def __init__(self, n=40, items=Augmented):
        self.items, self.epoch, self.pos, self.start, self.served = items(n), 0, 0, 0, 0

    def __iter__(self):
        order = torch.randperm(len(self.items.x), generator=torch.Generator().manual_seed(self.epoch))
        start, self.start = self.start, 0
        for k in range(start, len(order)):
            self.pos, self.served = k + 1, self.served + 1
            yield self.items[int(order[k])]
        self.epoch, self.pos = self.epoch + 1, 0

    def state_dict(self): return {"epoch": self.epoch, "pos": self.pos}

    def load_state_dict(self, state): self.epoch, self.start = state["epoch"], state["pos"]


class StopAfter(Callback):
    """A kill in the middle of batch `at`'s step (after the optimizer stepped): no checkpoint on the way out, the
    newest is the periodic one before it."""
    observes = ("step",)
    order = 10  # after BasicTrainCB's step

    def __init__(self, at): self.at = at

    def step(self, trainer):
        if trainer.training and (trainer.epoch, trainer.batch_num) == self.at: raise KeyboardInterrupt


def augmented_fit(make_train, seed=0):
    """A trainer on the loader `make_train()` builds after `set_seed(seed)` (a loader may draw as it is built)."""
    set_seed(seed)
    train = make_train()
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(0.3), nn.Linear(8, 2))
    dls = DataLoaders(train, DataLoader(Augmented(8, seed=1), batch_size=8))
    return Trainer(dls, nn.CrossEntropyLoss(), torch.optim.Adam, model, [BasicTrainCB(), MetricsCB()])


def killed_and_resumed(make_train, tmp_path, n_epochs=2, at=(1, 5)):
    """(the uninterrupted fit, the fit resumed after a stop at batch `at`, the position it resumed from)."""
    whole = augmented_fit(make_train)
    whole.fit(n_epochs, lr=1e-2)
    killed = augmented_fit(make_train)
    with pytest.raises(KeyboardInterrupt):
        killed.fit(n_epochs, lr=1e-2, callbacks=[CheckpointCB(tmp_path, every_n_batches=3), StopAfter(at)])
    position = torch.load(checkpoint_files(tmp_path)[-1], weights_only=True)["position"]
    resumed = augmented_fit(make_train, seed=7)  # another seed: what matters comes from the checkpoint
    resumed.fit(n_epochs, lr=1e-2, resume_from=tmp_path)
    return whole, resumed, position


def same_weights(a, b):
    return all(torch.equal(x, y) for x, y in zip(a.model.state_dict().values(), b.model.state_dict().values()))


MAP_STYLE = {
    "DataLoader, 2 workers": lambda: DataLoader(Augmented(), batch_size=4, shuffle=True, num_workers=2),
    "DataLoader, 2 persistent workers": lambda: DataLoader(Augmented(), batch_size=4, shuffle=True, num_workers=2,
                                                           persistent_workers=True),
    "DataLoader, own generator": lambda: DataLoader(Augmented(), batch_size=4, shuffle=True, num_workers=2,
                                                    generator=torch.Generator().manual_seed(3)),
    "DataLoader, no workers": lambda: DataLoader(Augmented(), batch_size=4, shuffle=True),
    "DatasetLoader, 2 workers": lambda: DatasetLoader(Augmented(), batch_size=4, shuffle=True, num_workers=2),
    "TensorLoader": lambda: TensorLoader(Augmented().x, Augmented().y, batch_size=4, shuffle=True),
}


@pytest.mark.parametrize("make_train", MAP_STYLE.values(), ids=MAP_STYLE.keys())
def test_map_style_data_resumes_bit_identical_with_random_augmentation_in_workers(tmp_path, make_train):
    whole, resumed, position = killed_and_resumed(make_train, tmp_path)
    assert (position["epoch"], position["batch"]) == (1, 3)  # mid-epoch: the periodic checkpoint before the stop
    assert same_weights(whole, resumed)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_resuming_loads_no_batch_before_the_position(tmp_path, num_workers):
    data = Augmented()  # ten batches of four
    make = lambda: DataLoader(data, batch_size=4, shuffle=True, num_workers=num_workers)
    with pytest.raises(KeyboardInterrupt):
        augmented_fit(make).fit(1, lr=1e-2, callbacks=[CheckpointCB(tmp_path, every_n_batches=3), StopAfter((0, 7))])
    assert torch.load(checkpoint_files(tmp_path)[-1], weights_only=True)["position"]["batch"] == 6
    data.loads.value = 0
    augmented_fit(make).fit(1, lr=1e-2, resume_from=tmp_path)
    assert data.loads.value == 4 * (10 - 6)  # only the batches after the position were loaded


def test_a_stream_with_a_state_resumes_from_it_bit_identical_and_replays_nothing(tmp_path, caplog):
    streams = []

    def make():
        streams.append(Stream())
        return DataLoader(streams[-1], batch_size=4)

    with caplog.at_level("INFO", logger="AIsaac"):
        whole, resumed, position = killed_and_resumed(make, tmp_path)
    assert position["loader_rng"]["stream"] == {3: {"epoch": 1, "pos": 12}}  # its state at the position only
    assert same_weights(whole, resumed)
    assert streams[-1].served == 40 - 12  # the rest of epoch 1, the last: nothing replayed
    assert "loaded again" not in caplog.text


def test_a_stream_stopped_before_a_batch_resumes_from_its_state_one_position_back(tmp_path):
    class StopBefore(Callback):  # the loader has handed out batch 5 already: the state saved must be batch 5's start
        def before_batch(self, trainer):
            if trainer.training and (trainer.epoch, trainer.batch_num) == (1, 5): raise KeyboardInterrupt

    # No draws while loading (Still): the RNGs at the interrupt are then those after batch 4's step.
    make = lambda: DataLoader(Stream(items=Still), batch_size=4)
    whole = augmented_fit(make)
    whole.fit(2, lr=1e-2)
    with pytest.raises(KeyboardInterrupt):
        augmented_fit(make).fit(2, lr=1e-2, callbacks=[CheckpointCB(tmp_path, every_epoch=False), StopBefore()])
    position = torch.load(checkpoint_files(tmp_path)[-1], weights_only=True)["position"]
    assert position["batch"] == 5 and position["loader_rng"]["stream"] == {5: {"epoch": 1, "pos": 20}}
    resumed = augmented_fit(make, seed=7)
    resumed.fit(2, lr=1e-2, resume_from=tmp_path)
    assert same_weights(whole, resumed)


def test_a_stream_without_a_state_is_replayed_and_the_resume_says_how_many_batches(tmp_path, caplog):
    class Plain(Stream):  # the same order every pass, and no state
        state_dict = load_state_dict = None

        def __iter__(self):
            self.epoch = 0
            return super().__iter__()

    with caplog.at_level("INFO", logger="AIsaac"):
        whole, resumed, _ = killed_and_resumed(lambda: DataLoader(Plain(), batch_size=4), tmp_path)
    assert same_weights(whole, resumed)
    assert "Resuming 3 batches into epoch 1" in caplog.text and "the 3 batches before the checkpoint are loaded " \
                                                                "again and dropped (replayed)" in caplog.text


class Still(Augmented):
    """The same rows, loaded without random draws."""

    def __getitem__(self, i):
        with self.loads.get_lock(): self.loads.value += 1
        return self.x[i], self.y[i]


# torchdata's state holds the position, not its workers' generators: a random transform in them draws otherwise
@pytest.mark.parametrize("num_workers, data", [(0, Augmented), (2, Still)], ids=["augmented, no workers",
                                                                                 "2 workers"])
def test_a_stateful_dataloader_resumes_from_its_state_bit_identical(tmp_path, num_workers, data):
    stateful = pytest.importorskip("torchdata.stateful_dataloader")
    datasets = []

    def make():
        datasets.append(data())
        return stateful.StatefulDataLoader(datasets[-1], batch_size=4, shuffle=True, num_workers=num_workers)

    whole, resumed, position = killed_and_resumed(make, tmp_path)
    assert position["loader_rng"]["stream"][3]  # the loader's state
    assert same_weights(whole, resumed)
    assert datasets[-1].loads.value == 4 * (10 - 3)  # the rest of epoch 1, the last: nothing replayed


@pytest.mark.parametrize("at", [(1, 5), (0, 5)], ids=["last epoch", "an epoch before the last"])
def test_a_hugging_face_streaming_dataset_resumes_from_its_state_bit_identical(tmp_path, caplog, at):
    datasets = pytest.importorskip("datasets")
    data = Augmented()

    def make():
        ds = datasets.Dataset.from_dict({"x": data.x.tolist(), "y": data.y.tolist()}).to_iterable_dataset(2)
        ds = ds.map(lambda e: {"x": [v + 0.1 * float(torch.randn(())) for v in e["x"]], "y": e["y"]})
        collate = lambda items: (torch.tensor([i["x"] for i in items]), torch.tensor([i["y"] for i in items]))
        return DataLoader(ds, batch_size=4, collate_fn=collate)

    with caplog.at_level("INFO", logger="AIsaac"):
        whole, resumed, position = killed_and_resumed(make, tmp_path, at=at)
    assert position["loader_rng"]["stream"][3]["epoch"] == at[0]  # the dataset's state, told its epoch (set_epoch)
    assert same_weights(whole, resumed) and "loaded again" not in caplog.text
