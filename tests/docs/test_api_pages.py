"""The API reference is by concept and class: every AIsaac module has a page, listed in mkdocs.yml under its class
names (python docs/gen_api.py writes them); each page opens with its classes, each with a short example, and ends
with the module's helpers."""
import ast
import importlib.util
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("gen_api", ROOT / "docs" / "gen_api.py")
gen_api = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gen_api)


def test_each_module_has_a_page_in_the_nav():
    mods = gen_api.modules()
    assert "trainer" in mods and "callbacks.metrics" in mods
    nav = (ROOT / "mkdocs.yml").read_text()
    assert gen_api.nav_block(mods) in nav, "run: python docs/gen_api.py"
    for m in mods:
        page = ROOT / "docs" / "api" / (m.replace(".", "/") + ".md")
        assert page.read_text() == gen_api.page_text(m), f"run: python docs/gen_api.py ({m})"


def test_the_nav_names_classes():
    block = gen_api.nav_block(gen_api.modules())
    for name in ("Trainer", "Callback", "MetricsCB", "CheckpointCB", "DeviceCB", "ProgressCB", "DataLoaders"):
        assert re.search(rf'^      - "{name}": api/', block, re.M), name
    assert "callbacks.metrics" not in block.replace("api/callbacks/metrics.md", "")


def test_a_class_page_opens_with_the_class_and_an_example_then_the_helpers():
    text = gen_api.page_text("callbacks.metrics")
    assert text.startswith("# `MetricsCB`\n\n```python\n")
    assert text.index("::: AIsaac.callbacks.metrics.MetricsCB") < text.index("## More in `AIsaac.callbacks.metrics`")
    assert '"!^MetricsCB$"' in text  # not shown twice
    assert gen_api.page_text("callback").startswith("# `Callback`\n\n```python\nclass PrintLossCB(Callback):")


def test_every_callback_and_the_trainer_have_an_example_that_compiles():
    heads = [n for m in gen_api.modules() for n in gen_api.headline(m)]
    must = [n for n in heads if n.endswith("CB") or n in ("Trainer", "Callback", "DataLoaders", "CoreCBs")]
    internal = {"AccelerateStopCB"}  # added by AccelerateCB itself, never by a user
    missing = [n for n in must if n not in gen_api.EXAMPLES and not n.startswith("Base") and n not in internal
               and not any(n in code for code in gen_api.EXAMPLES.values())]
    assert not missing, f"no example in docs/gen_api.py's EXAMPLES: {missing}"
    for name, code in gen_api.EXAMPLES.items(): ast.parse(code, filename=f"EXAMPLES[{name!r}]")


def entries(nav, trail=()):
    for item in nav:
        for title, value in item.items() if isinstance(item, dict) else [(None, item)]:
            if isinstance(value, list): yield from entries(value, (*trail, title))
            else: yield (*trail, title), value


def test_checkpoints_have_one_entry_in_the_nav():
    nav = list(entries(yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]))
    guides = [(trail, page) for trail, page in nav if page in ("checkpoints.md", "resume.md")]
    assert len(guides) == 2 and len({trail[:-1] for trail, _ in guides}) == 1, guides  # both under one entry
    tops = [trail for trail, page in nav if "checkpoint" in " ".join(filter(None, trail)).lower()
            and page.endswith(".md") and not page.startswith("api/")]  # the guides (a notebook may say so too)
    assert len({t[:2] for t in tops}) == 1, tops


def test_long_code_lines_wrap_instead_of_being_cut_off():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    css = "".join((ROOT / "docs" / path).read_text() for path in config.get("extra_css", []))
    assert re.search(r"pre > code \{[^}]*white-space: pre-wrap", css)
