"""CheckpointWriter and host_copy (AIsaac/runtime/checkpoint_writer.py): a copy training cannot change, one write at a
time in a background thread, a failure raised once with its class; CheckpointCB's use of it is tested in
tests/callbacks/test_checkpoint_background.py."""
import threading

import pytest
import torch

from AIsaac.runtime.checkpoint_writer import CheckpointWriter, host_copy


def test_host_copy_is_a_copy_of_every_tensor_and_container():
    weights = torch.ones(3)
    state = {"model": {"w": weights}, "lists": [[1, 2]], "opt": {"state": {0: {"m": torch.zeros(2)}}},
             "rng": (1, torch.arange(3)), "name": "x"}
    copy = host_copy(state)
    weights.add_(1), state["lists"][0].append(3), state["opt"]["state"][0]["m"].add_(5), state["rng"][1].add_(1)
    assert torch.equal(copy["model"]["w"], torch.ones(3)) and copy["lists"] == [[1, 2]]
    assert torch.equal(copy["opt"]["state"][0]["m"], torch.zeros(2)) and torch.equal(copy["rng"][1], torch.arange(3))
    assert copy["name"] == "x" and isinstance(copy["rng"], tuple)


def test_one_write_at_a_time_in_the_background_and_a_failure_raised_once():
    release, order = threading.Event(), []

    def slow(state):
        release.wait(5)
        order.append(("written", int(state["n"])))

    w = CheckpointWriter()
    w.submit({"n": torch.tensor(1)}, slow)
    assert w.busy and order == []  # submit returned while the write waits
    release.set()
    w.submit({"n": torch.tensor(2)}, slow)  # waits for the first, then starts the second
    assert order[0] == ("written", 1)
    w.wait()
    assert order == [("written", 1), ("written", 2)] and not w.busy

    def full(state): raise OSError(28, "No space left on device")

    w.submit({}, full)
    w._thread.join()
    assert w.failed
    with pytest.raises(OSError, match="No space left"): w.raise_failed()
    assert not w.failed
    w.raise_failed()  # once


def test_without_background_the_write_is_done_when_submit_returns():
    done = []
    w = CheckpointWriter(background=False)
    w.submit({"a": 1}, lambda s: done.append(s))
    assert done == [{"a": 1}] and not w.busy
