"""view_source_code prints source in a terminal."""
import pytest

from AIsaac.all import BasicTrainCB, view_source_code, with_cbs


def test_prints_class_and_function_source(capsys):
    view_source_code(BasicTrainCB)
    view_source_code(with_cbs)
    out = capsys.readouterr().out
    assert "class BasicTrainCB" in out and "def predict(self, trainer)" in out and "class with_cbs" in out


def test_instance_shows_its_class(capsys):
    view_source_code(BasicTrainCB())
    assert "class BasicTrainCB" in capsys.readouterr().out


def test_builtin_has_no_source():
    with pytest.raises(TypeError, match="cannot find the source"):
        view_source_code(len)
