"""Writes one API page per AIsaac module under docs/api/ and the API part of mkdocs.yml's nav.

    python docs/gen_api.py      # after adding or removing a module; tests/docs/test_api_pages.py checks it was run
"""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# One group per folder of the package: the layout is the architecture.
GROUPS = [("Trainer and its loop", ("trainer", "verbs", "callback", "order", "records", "callback_set", "callback_functions", "dispatch",
                                    "checks", "events", "exceptions")),
          ("Callbacks", ("callbacks.",)), ("Runtime (device, RNG, checkpoints, distributed)", ("runtime.",)),
          ("Tools (predict, lr search, profiling, summaries, side runs)", ("tools.",)), ("Display", ("display.",)),
          ("Data", ("data.",)), ("Models", ("models.",))]
# Internals, left out of the reference: the command line, the demo, the notebook plumbing behind the display.
INTERNAL = ("all", "cli", "demo", "display.html_bar", "display.notebook", "display.tables")
# mkdocstrings options of one page on top of mkdocs.yml's. The Trainer's page lists every method users call on a
# trainer, those it inherits from a base class too.
PAGE_OPTIONS = {"trainer": ("inherited_members: true",)}


def modules() -> list[str]:
    pkg = ROOT / "AIsaac"
    names = [".".join(p.relative_to(pkg).with_suffix("").parts) for p in pkg.rglob("*.py")]
    return sorted(n for n in names if not n.endswith("__init__") and n not in INTERNAL)


def group_of(name: str) -> str:
    for title, prefixes in GROUPS:
        if any(name == p or (p.endswith(".") and name.startswith(p)) for p in prefixes): return title
    raise ValueError(f"AIsaac.{name} belongs to no group of the API reference; add it to GROUPS in docs/gen_api.py.")


def nav_block(mods: list[str]) -> str:
    lines = ["  - API reference:"]
    for title, _ in GROUPS:
        members = [m for m in mods if group_of(m) == title]
        if not members: continue
        lines.append(f"    - {title}:")
        lines += [f"      - {m}: api/{m.replace('.', '/')}.md" for m in members]
    return "\n".join(lines) + "\n"


def page_text(module: str) -> str:
    """The Markdown of `module`'s API page."""
    options = "".join(f"      {o}\n" for o in PAGE_OPTIONS.get(module, ()))
    return f"# `AIsaac.{module}`\n\n::: AIsaac.{module}\n" + (f"    options:\n{options}" if options else "")


def main() -> None:
    mods = modules()
    api = ROOT / "docs" / "api"
    for old in api.rglob("*.md"): old.unlink()
    for m in mods:
        page = api / (m.replace(".", "/") + ".md")
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text(page_text(m))
    cfg = ROOT / "mkdocs.yml"
    text = cfg.read_text()
    text = re.sub(r"  - API reference:\n(?:    .*\n)*", nav_block(mods), text)
    cfg.write_text(text)


if __name__ == "__main__":
    main()
