"""MonitorCB, the base of callbacks acting on one epoch_log number per epoch: a subclass in a real fit sees that number
once per epoch, equal to the training by hand, and "improved" follows mode and min_delta."""
import pytest
import torch
from torch import nn

from AIsaac.all import (Accuracy, CallbackError, CallbackSetupError, CancelEpochException, EarlyStoppingCB,
                        MetricsCB, MonitorCB, SaveBestCB)
from AIsaac.callbacks.monitor import auto_mode


class Seen(MonitorCB):
    """Keeps every (epoch, value, improved) it is called with."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seen = []

    def on_value(self, trainer, value, improved): self.seen.append((trainer.epoch, value, improved))


def valid_losses_by_hand(model, dls, epochs, lr):
    opt, lf, out = torch.optim.SGD(model.parameters(), lr=lr), nn.CrossEntropyLoss(), []
    xv, yv = map(torch.cat, zip(*dls.valid))
    for _ in range(epochs):
        for xb, yb in dls.train:
            lf(model(xb), yb).backward()
            opt.step()
            opt.zero_grad()
        with torch.no_grad(): out.append(lf(model(xv), yv).item())
    return out


def test_one_value_per_epoch_equal_to_the_validation_loss_by_hand(make_trainer, make_model, make_dls):
    cb = Seen()  # monitor='valid', mode 'auto': 'min'
    make_trainer([cb]).fit(4, lr=0.5)
    want = valid_losses_by_hand(make_model(), make_dls(), 4, 0.5)
    assert [e for e, _, _ in cb.seen] == [0, 1, 2, 3] and cb.mode == "min"
    assert [v for _, v, _ in cb.seen] == pytest.approx(want, rel=1e-5)
    assert [imp for _, _, imp in cb.seen] == [i == 0 or v < min(want[:i]) for i, v in enumerate(want)]
    i_best = min(range(4), key=want.__getitem__)
    assert (cb.best_epoch, cb.best) == (i_best, pytest.approx(want[i_best], rel=1e-5))


def test_min_delta_and_max_mode_decide_what_improves(make_trainer):
    strict = type("Strict", (Seen,), {})(monitor="Accuracy", min_delta=0.05)  # 'auto': 'max' for a score
    plain = Seen(monitor="Accuracy")
    make_trainer([MetricsCB(Accuracy=Accuracy()), strict, plain], metrics=False).fit(5, lr=0.5)
    accs = [v for _, v, _ in plain.seen]
    assert strict.mode == plain.mode == "max" and accs == [v for _, v, _ in strict.seen] and len(accs) == 5
    best_plain = best_strict = None
    for (_, v, imp_plain), (_, _, imp_strict) in zip(plain.seen, strict.seen):
        assert imp_plain == (best_plain is None or v > best_plain)
        assert imp_strict == (best_strict is None or v > best_strict + 0.05)
        if imp_plain: best_plain = v
        if imp_strict: best_strict = v
    assert [i for *_, i in plain.seen] != [i for *_, i in strict.seen]  # min_delta changed a decision here


def test_an_epoch_with_a_cancelled_phase_is_not_seen(make_trainer):
    class CancelValidationOfEpoch1:
        def before_batch(self, trainer):
            if trainer.epoch == 1 and not trainer.training: raise CancelEpochException()
    cb = Seen()
    make_trainer([cb, CancelValidationOfEpoch1()]).fit(3)
    assert [e for e, _, _ in cb.seen] == [0, 2]


def test_state_dict_round_trip_keeps_the_best(make_trainer):
    cb = Seen()
    make_trainer([cb]).fit(2, lr=0.5)
    other = Seen()
    other.load_state_dict(cb.state_dict())
    assert (other.best, other.best_epoch) == (cb.best, cb.best_epoch)


def test_a_loss_this_fit_will_not_have_is_refused_at_fit_start(make_trainer):
    cb = Seen()  # monitors 'valid'
    t = make_trainer([cb])
    before = [p.detach().clone() for p in t.model.parameters()]
    with pytest.raises(CallbackSetupError, match="Seen monitors 'valid', which no callback puts in the epoch log"):
        t.fit(1, valid=False)
    assert cb.seen == [] and all(torch.equal(a, b) for a, b in zip(before, t.model.parameters()))


def test_a_name_no_callback_announces_is_checked_when_the_first_epoch_ends(make_trainer):
    cb = Seen(monitor="Accuracy")  # MetricsCB() has no such metric; it could still come from trainer.log
    with pytest.raises(KeyError, match="Seen monitors 'Accuracy', which is not in the epoch log"):
        make_trainer([cb]).fit(3)
    assert cb.seen == []


def test_bad_arguments_and_a_missing_on_value():
    with pytest.raises(ValueError, match="mode must be 'min'"): Seen(mode="lowest")
    with pytest.raises(ValueError, match="min_delta must be >= 0"): Seen(min_delta=-1)


@pytest.mark.parametrize("name, mode", [("valid", "min"), ("train", "min"), ("val_mae", "min"), ("rmse", "min"),
                                        ("error_rate", "min"), ("Accuracy", "max"), ("R2", "max"), ("f1", "max")])
def test_mode_auto_is_min_for_losses_and_errors_and_max_for_scores(name, mode):
    assert auto_mode(name) == mode
    assert SaveBestCB(monitor=name).mode == EarlyStoppingCB(monitor=name).mode == mode


def test_a_subclass_without_on_value_says_so(make_trainer):
    class Forgot(MonitorCB): pass
    with pytest.raises(CallbackError, match="Forgot must define on_value"):
        make_trainer([Forgot()]).fit(1)
    with pytest.raises(CallbackSetupError):  # and one that cannot run is refused when added
        make_trainer([type("Bad", (MonitorCB,), {"order": "late"})()])
