import IPython.display
import pytest

from AIsaac.display.html_bar import HTMLBar, show_html


class FakeHandle:
    def __init__(self, outputs, bundle): self.outputs, self.i = outputs, len(outputs); outputs.append(bundle)
    def update(self, bundle, raw=False): self.outputs[self.i] = bundle


@pytest.fixture
def outputs(monkeypatch):
    """The notebook's outputs, as a list of mime bundles that `display`/`update` fill."""
    outs = []
    monkeypatch.setattr(IPython.display, "display", lambda bundle, raw, display_id: FakeHandle(outs, bundle))
    return outs


def test_bar_redraws_one_output_in_place(outputs):
    bar = HTMLBar(total=4, desc="train", mininterval=0)
    for _ in range(4): bar.update()
    bar.set_postfix(loss="0.5000")
    bar.close()
    assert len(outputs) == 1
    assert "<progress value='4' max='4'" in outputs[0]["text/html"]
    assert outputs[0]["text/plain"].startswith("train: 4/4 100% [") and outputs[0]["text/plain"].endswith("loss=0.5000")


def test_bar_without_leave_blanks_its_output_and_lends_it_to_the_next(outputs):
    first = HTMLBar(total=2, desc="train", leave=False)
    first.close()
    assert outputs == [{"text/html": "", "text/plain": ""}]
    second = HTMLBar(total=3, desc="valid", handle=first.handle, mininterval=0)
    second.update(3)
    assert len(outputs) == 1 and outputs[0]["text/plain"].startswith("valid: 3/3 100%")


def test_bar_redraws_at_most_every_mininterval_but_always_at_the_end(outputs, monkeypatch):
    draws = []
    monkeypatch.setattr(HTMLBar, "_draw", lambda self, now=None: draws.append(self.n))
    bar = HTMLBar(total=100, mininterval=3600)
    for _ in range(100): bar.update()
    assert draws == [0, 100]


def test_disabled_bar_shows_nothing(outputs):
    bar = HTMLBar(total=2, disable=True)
    bar.update(2)
    bar.close()
    assert outputs == []


def test_unknown_total_and_html_is_escaped(outputs):
    HTMLBar(desc="<b>", mininterval=0).update(5)
    assert "value=" not in outputs[0]["text/html"] and "&lt;b&gt;: 5 [" in outputs[0]["text/html"]


def test_show_html_replaces_through_the_handle(outputs):
    h = show_html("<i>a</i>", "a")
    assert show_html("<i>b</i>", "b", h) is h and outputs == [{"text/html": "<i>b</i>", "text/plain": "b"}]
