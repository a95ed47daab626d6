"""The one whole-number check: what it lets through, and errors that name the owner, the argument and the fix."""
import numpy as np
import pytest

from AIsaac.all import CheckpointCB, EarlyStoppingCB, GradAccumCB, TensorLoader, TerminateOnNaNCB
from AIsaac.runtime.args import whole_number


@pytest.mark.parametrize("value,minimum", [(1, 1), (7, 1), (0, 0), (np.int64(3), 1)])
def test_whole_numbers_pass_as_plain_ints(value, minimum):
    got = whole_number("n", value, minimum=minimum)
    assert got == value and type(got) is int


@pytest.mark.parametrize("value", [0, -2, 2.5, 2.0, True, False, "3", None, [1]])
def test_anything_else_is_refused(value):
    with pytest.raises(ValueError, match=r"n must be a whole number >= 1; got "):
        whole_number("n", value)


def test_message_names_owner_argument_meaning_and_none():
    with pytest.raises(ValueError) as e:
        whole_number("keep", 0, owner="CheckpointCB", what="how many checkpoints to keep", none="keep all")
    assert str(e.value) == ("CheckpointCB: keep must be a whole number >= 1 (how many checkpoints to keep), "
                            "or None (keep all); got 0.")
    assert whole_number("keep", None, none="keep all") is None


def test_integral_float_gets_the_int_to_pass():
    with pytest.raises(ValueError, match=r"got 4.0. Pass 4 \(an int\)."): whole_number("n", 4.0)


def test_bool_is_not_a_count():
    with pytest.raises(ValueError, match="got True"): whole_number("every", True)


@pytest.mark.parametrize("make,owner,name", [
    (lambda: GradAccumCB(0), "GradAccumCB", "n"),
    (lambda: EarlyStoppingCB(patience=True), "EarlyStoppingCB", "patience"),
    (lambda: TerminateOnNaNCB(every=1.5), "TerminateOnNaNCB", "every"),
    (lambda: CheckpointCB("ckpt", keep=0), "CheckpointCB", "keep"),
    (lambda: CheckpointCB("ckpt", every_n_batches=-1), "CheckpointCB", "every_n_batches"),
    (lambda: TensorLoader(np.zeros(4), batch_size=0), "TensorLoader", "batch_size"),
])
def test_call_sites_name_their_owner_and_argument(make, owner, name):
    with pytest.raises(ValueError, match=rf"^{owner}: {name} must be a whole number >= 1 \("):
        make()


def test_callbacks_keep_the_validated_value():
    assert GradAccumCB(np.int64(2)).n == 2 and type(GradAccumCB(np.int64(2)).n) is int
    assert TerminateOnNaNCB(every=3).every == 3
