"""Splitting a batch into inputs and targets, its first tensor, and its size: targets first, else inputs."""
import torch

from AIsaac.all import batch_size, split_batch
from AIsaac.runtime.batch import first_tensor


def test_split_batch_of_a_tuple_a_mapping_and_a_tensor():
    x, x2, y = torch.zeros(4, 3), torch.zeros(4, 2), torch.zeros(4)
    assert split_batch((x, x2, y), n_inp=2) == ((x, x2), (y,))
    enc = {"input_ids": x, "labels": y}
    assert split_batch(enc) == ((enc,), (y,)) and split_batch({"input_ids": x}) == (({"input_ids": x},), ())
    assert split_batch(x) == ((x,), ())


def test_first_tensor_looks_through_nesting():
    t = torch.ones(2)
    assert first_tensor(("a", [{"k": None, "v": t}])) is t and first_tensor(("a", [1])) is None


def test_batch_size_is_the_targets_rows_else_the_inputs():
    # Inputs and targets that disagree (a sequence model's inputs, one target per sequence): the targets decide.
    assert batch_size((torch.zeros(5, 3),), (torch.zeros(2),)) == 2
    assert batch_size((torch.zeros(5, 3),), ()) == 5  # no targets: the inputs' rows
    assert batch_size(({"input_ids": torch.zeros(6, 9)},), ()) == 6
    assert batch_size((torch.zeros(5),), (torch.tensor(1.),)) == 1  # a scalar target counts as one row
    assert batch_size(("text",), ()) == 1
