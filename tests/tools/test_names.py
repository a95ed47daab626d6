"""retrieve_global_name: the names an object goes by in the caller's scope, as the original's notebooks use it."""
import pytest

from AIsaac.all import retrieve_global_name


def name_of(x): return retrieve_global_name(x)


def test_retrieve_global_name_gives_the_callers_names():
    trainer = object()
    alias = trainer
    other = object()  # noqa: F841
    assert sorted(name_of(trainer)) == ["alias", "trainer"]
    assert retrieve_global_name(other, frames_up=1) == ["other"]
    unnamed = name_of(object())  # outside an assert: pytest names the assert's own values
    assert unnamed == []
    with pytest.raises(ValueError, match="frames_up"): retrieve_global_name(trainer, 0)
