"""Every AIsaac module has an API reference page, listed in mkdocs.yml (python docs/gen_api.py writes them)."""
import importlib.util
from pathlib import Path

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
    assert gen_api.page_text("callback") == "# `AIsaac.callback`\n\n::: AIsaac.callback\n"
