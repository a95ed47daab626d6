"""AccelerateCB's launch: the launcher's process count, the Accelerator it makes (and refuses), the launch checks,
and the group votes travel on (one process here; the multi-process launches are in test_accelerate*.py)."""
from datetime import timedelta
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist

from AIsaac.all import AccelerateCB, DeviceCB
from AIsaac.callbacks.accelerate_launch import (DEFAULT_TIMEOUT, check_launch, check_timeout, launched_processes,
                                                make_accelerator, set_timeout, vote_group)


def test_launched_processes_is_the_launchers_world_size(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert launched_processes() == 1
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert launched_processes() == 4


def test_fp16_on_a_cpu_is_refused_with_what_to_use_instead():
    pytest.importorskip("accelerate")
    if torch.cuda.is_available(): pytest.skip("a GPU runs fp16")
    with pytest.raises(RuntimeError, match="mixed_precision='fp16' needs a GPU.*use 'bf16'"):
        make_accelerator("fp16", {"cpu": True})
    acc = make_accelerator("no", {"cpu": True})
    assert acc.num_processes == 1 and acc.device.type == "cpu"


def test_a_launch_the_accelerator_does_not_see_and_a_device_it_does_not_run_on_are_errors(monkeypatch):
    acc = SimpleNamespace(device=torch.device("cpu"), num_processes=1, distributed_type="NO")
    trainer = SimpleNamespace(cbs=[DeviceCB("cpu")])
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(RuntimeError, match="launcher started 2 processes but Accelerate runs 1.*each would train alone"):
        check_launch(trainer, acc)
    monkeypatch.setenv("WORLD_SIZE", "1")
    check_launch(trainer, acc)  # agrees: nothing raised
    with pytest.raises(RuntimeError, match=r"DeviceCB puts the model and batches on cuda.*runs on cpu.*DeviceCB\('cpu'\)"):
        check_launch(SimpleNamespace(cbs=[DeviceCB("cuda")]), acc)


def test_votes_travel_on_the_default_group_when_it_is_gloo(tmp_path):
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try: assert vote_group() is None
    finally: dist.destroy_process_group()


def test_the_timeout_is_seconds_above_zero_or_none():
    assert AccelerateCB().timeout == DEFAULT_TIMEOUT == 600 and AccelerateCB(timeout=None).timeout is None
    assert check_timeout(5) == 5.0 and check_timeout(0.5) == 0.5
    for bad in (0, -1, True, "60", float("nan")):
        with pytest.raises(ValueError, match="timeout must be a number of seconds > 0"): AccelerateCB(timeout=bad)



def test_the_timeout_goes_to_the_default_and_the_vote_group_unless_the_accelerator_was_given_one(monkeypatch):
    from accelerate.utils import InitProcessGroupKwargs
    calls = []
    monkeypatch.setattr(dist, "set_timeout", lambda timeout, group=None: calls.append((timeout, group)), raising=False)
    set_timeout(5, None, {})
    assert calls == [(timedelta(seconds=5), None)]  # votes on the default group: set once
    calls.clear(), set_timeout(5, "votes", {})
    assert set(calls) == {(timedelta(seconds=5), None), (timedelta(seconds=5), "votes")} and len(calls) == 2
    calls.clear(), set_timeout(5, None, {"kwargs_handlers": [InitProcessGroupKwargs(timeout=timedelta(seconds=90))]})
    assert calls == [(timedelta(seconds=90), None)]
    calls.clear(), set_timeout(None, None, {})
    assert calls == []  # the groups' own
