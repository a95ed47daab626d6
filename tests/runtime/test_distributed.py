"""The distributed state (AIsaac/runtime/distributed.py): the one-process defaults callbacks see in a plain fit, the
stop codes and the exceptions they stand for, and a StopVote in a one-process group."""
import pytest
import torch
import torch.distributed as dist
from torch import nn

from AIsaac.all import BasicTrainCB, CancelBatchException, CancelEpochException, CancelFitException, Trainer
from AIsaac.runtime.distributed import (BATCH, EPOCH, ERROR, FIT, OK, ProcessLostError, ProcessStopError, StopVote,
                                        collective, is_comm_failure, is_sharded, stop_code, stop_exception)


class SeesState:
    """Reads the distributed state in a fit, as a callback that writes files or sums over processes would."""

    def before_fit(self, trainer):
        self.state = (trainer.is_main_process, trainer.num_processes, trainer.process_index)
        self.summed = trainer.reduce_sum(torch.tensor([1.0, 2.0]))
        self.gathered = trainer.gather_object({"rank": trainer.process_index})


def test_a_plain_fit_is_one_process_whose_collectives_are_the_identity(tiny_dls, tiny_model):
    seen = SeesState()
    t = Trainer(tiny_dls, nn.CrossEntropyLoss(), torch.optim.SGD, tiny_model, [BasicTrainCB(), seen])
    t.fit(1, lr=0.1)
    assert seen.state == (True, 1, 0)
    assert torch.equal(seen.summed, torch.tensor([1.0, 2.0])) and seen.gathered == [{"rank": 0}]
    x = torch.zeros(2)
    assert t.reduce_sum(x) is x  # no copy, no collective
    assert not is_sharded(tiny_model)


def test_stop_codes_rank_by_severity_and_a_cancel_past_its_level_is_an_error():
    assert OK < BATCH < EPOCH < FIT < ERROR
    assert stop_code(None) == OK
    assert stop_code(CancelBatchException()) == BATCH and stop_code(CancelFitException()) == FIT
    assert stop_code(CancelEpochException(), level=EPOCH) == EPOCH
    # A batch cancel seen at the epoch level escaped its batch: nothing there can catch it any more.
    assert stop_code(CancelBatchException(), level=EPOCH) == ERROR
    assert stop_code(CancelEpochException(), level=FIT) == ERROR
    assert stop_code(CancelFitException(), level=FIT) == FIT
    assert stop_code(RuntimeError("boom")) == stop_code(KeyboardInterrupt()) == ERROR


def test_each_stop_code_is_raised_as_its_cancel_or_as_the_other_processes_errors():
    assert type(stop_exception(BATCH)) is CancelBatchException
    assert type(stop_exception(EPOCH)) is CancelEpochException
    assert type(stop_exception(FIT)) is CancelFitException
    err = stop_exception(ERROR, ["", "CUDA out of memory", "", "boom"])
    assert isinstance(err, ProcessStopError) and isinstance(err, RuntimeError)
    assert str(err) == "process 1 failed: CUDA out of memory; process 3 failed: boom"
    assert str(stop_exception(ERROR)) == "another process failed"
    assert all(stop_code(stop_exception(c), level=c) == c for c in (BATCH, EPOCH, FIT))  # the round trip


@pytest.fixture
def one_process_group(tmp_path):
    if dist.is_initialized(): pytest.skip("a process group is already set up in this process")
    if not dist.is_gloo_available(): pytest.skip("torch.distributed without gloo")
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try: yield
    finally: dist.destroy_process_group()


def test_a_vote_of_one_process_agrees_on_its_own_code_and_keeps_its_error_message(one_process_group):
    vote = StopVote()
    assert [vote(code) for code in (OK, BATCH, EPOCH, FIT)] == [OK, BATCH, EPOCH, FIT] and vote.messages == []
    assert vote(ERROR, "boom") == ERROR and vote.messages == ["boom"]
    assert str(stop_exception(ERROR, vote.messages)) == "process 0 failed: boom"


GLOO_RESET = RuntimeError("[../third_party/gloo/gloo/transport/tcp/pair.cc:561] Connection closed by peer "
                          "[127.0.0.1]:2984. This is typically caused by a remote worker crashing.")
GLOO_TIMEOUT = RuntimeError("[../third_party/gloo/gloo/transport/tcp/unbound_buffer.cc:78] Timed out waiting 5000ms "
                            "for recv operation to complete")


def test_a_collectives_failure_is_told_from_the_users_errors():
    assert is_comm_failure(GLOO_RESET) and is_comm_failure(GLOO_TIMEOUT)
    assert is_comm_failure(dist.DistBackendError("NCCL communicator was aborted"))
    assert not is_comm_failure(RuntimeError("element 0 of tensors does not require grad and does not have a grad_fn"))
    assert not is_comm_failure(RuntimeError("my gloo/nccl helper timed out")) and not is_comm_failure(None)
    assert not is_comm_failure(ValueError("gloo/transport/ closed"))


def test_a_failed_collective_becomes_a_lost_process_error_naming_whom_it_waited_for(one_process_group, monkeypatch):
    lost = []
    monkeypatch.setattr(dist, "get_world_size", lambda group=None: 4)  # this process is rank 0 of 4
    with pytest.raises(ProcessLostError) as e, collective("the vote", lambda: lost.append(1)): raise GLOO_TIMEOUT
    assert str(e.value).startswith("Lost one of processes 1, 2, 3 of 4: it did not answer while process 0 (this one) "
                                   "waited for it in the vote") and e.value.__cause__ is GLOO_TIMEOUT
    assert isinstance(e.value, ProcessStopError) and lost == [1]
    monkeypatch.setattr(dist, "get_world_size", lambda group=None: 2)
    monkeypatch.setenv("GROUP_WORLD_SIZE", "2"), monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
    with pytest.raises(ProcessLostError, match=r"^Lost process 1 of 2 \(node 1\): it broke the connection while "
                       r"process 0 \(this one, node 0\) waited"), collective("the vote"): raise GLOO_RESET
    with pytest.raises(ProcessLostError) as again, collective("outer", lambda: lost.append(2)): raise e.value
    assert again.value is e.value and lost == [1, 2]  # already named: passed on as it is
    for other in (ValueError("boom"), ProcessStopError("process 1 failed: gloo")):  # not a lost process
        with pytest.raises(type(other)) as kept, collective("the vote", lambda: lost.append(3)): raise other
        assert kept.value is other and lost == [1, 2]
