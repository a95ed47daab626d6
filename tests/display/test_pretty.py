"""PPDict: prints its numbers short and keeps them as they are."""
from datetime import timedelta

from AIsaac.all import PPDict


def test_ppdict_prints_short_numbers_and_keeps_values():
    d = PPDict(loss=0.123456789, epoch=3, time=timedelta(seconds=61.2), name="train")
    assert str(d) == "{'loss': 0.1235, 'epoch': 3, 'time': '0:01:02', 'name': 'train'}"
    assert d["loss"] == 0.123456789 and isinstance(d, dict)


def test_ppdict_rounds_durations_up_to_the_second_and_leaves_other_values():
    d = PPDict(t=timedelta(hours=1, seconds=0.01), exact=timedelta(seconds=5), n=None, x=[0.123456])
    assert str(d) == "{'t': '1:00:01', 'exact': '0:00:05', 'n': None, 'x': [0.123456]}"
