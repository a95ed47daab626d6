"""The layout is the architecture: docs/layout.md lists exactly the package's modules, the import graph has no cycle
and no arrow from a lower floor to a higher one, and every module has its mirror test file.

    .venv/bin/python tests/test_layout.py     # prints the floors, the cycles and the upward imports of the tree now
"""
from __future__ import annotations

import ast
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "AIsaac"
LAYOUT_MD = ROOT / "docs" / "layout.md"

# The floors of the package, lowest first (docs/layout.md, "Floors", says why). A module may import its own floor and
# the floors below it, never one above: the kernel does not know its add-ons, the add-ons know the kernel. A folder
# ("runtime/") stands for every module in it, its __init__ included; "__init__" is AIsaac/__init__.py.
FLOORS: dict[str, int] = {
    "events": 0, "exceptions": 0, "runtime/": 0, "models/": 0,                # plain PyTorch helpers, no trainer
    "display/": 1,                                                            # showing things
    "data/": 2,                                                               # loaders and datasets
    "order": 3, "callback": 3, "records": 3, "callback_functions": 3, "dispatch": 3, "checks": 3,  # the kernel
    "callback_set": 3,
    "callbacks/": 4,                                                          # one callback per module
    "tools/": 5,                                                              # the trainer's verbs, around a fit
    "trainer": 6, "verbs": 6,                                                 # the loop, and the verbs it declares
    "all": 7, "demo": 7, "cli": 7,                                            # entry points
    "__init__": 7,  # `from AIsaac import Trainer`: AIsaac.all's names, read from it when first asked for
}

# Modules without a mirror test file tests/<folder>/test_<module>.py, each with the reason.
NO_MIRROR: dict[str, str] = {}


# ---- the package, as files ----
def module_name(path: Path) -> str:
    """AIsaac/callbacks/metrics.py -> 'AIsaac.callbacks.metrics'; AIsaac/runtime/__init__.py -> 'AIsaac.runtime'."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_files() -> dict[str, Path]:
    """Every module of the package (package __init__ files included), by dotted name."""
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py")) if "__pycache__" not in p.parts}


def package_modules() -> set[str]:
    """The modules as docs/layout.md writes them ('callbacks/metrics.py'), __init__ files left out."""
    return {p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py")
            if p.name != "__init__.py" and "__pycache__" not in p.parts}


# ---- docs/layout.md's tree ----
def layout_tree(text: str) -> set[str]:
    """The modules listed in the first fenced block that starts with `AIsaac/`, as paths below AIsaac/.

    Each level is indented two spaces; an entry is a name ending in `/` (a folder) or `.py` (a module), then its
    description. A line indented deeper than any entry could be continues the description above it."""
    blocks = re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.M | re.S)
    tree = next((b for b in blocks if b.startswith("AIsaac/")), None)
    assert tree is not None, f"{LAYOUT_MD.relative_to(ROOT)} has no fenced block starting with the line 'AIsaac/'"
    listed, folders = set(), []  # folders: the open folders below AIsaac/, outermost first
    for line in tree.splitlines()[1:]:
        if not line.strip(): continue
        indent = len(line) - len(line.lstrip(" "))
        level = indent // 2 - 1  # 0: an entry directly in AIsaac/
        if indent % 2 or level < 0 or level > len(folders): continue  # a wrapped description
        name = line.split()[0]
        if name.endswith("/"):
            folders[level:] = [name[:-1]]
        elif name.endswith(".py"):
            del folders[level:]
            listed.add("/".join([*folders, name]))
    return {m for m in listed if not m.endswith("__init__.py")}


def test_layout_md_lists_exactly_the_modules_of_the_package():
    listed, actual = layout_tree(LAYOUT_MD.read_text()), package_modules()
    missing, gone = sorted(actual - listed), sorted(listed - actual)
    assert not missing and not gone, (
        f"docs/layout.md's tree does not match AIsaac/.\n  modules missing from it: {missing or 'none'}\n"
        f"  listed but not in the package: {gone or 'none'}")


def test_layout_tree_parser_reads_folders_wrapped_lines_and_nesting():
    text = ("x\n```\nAIsaac/\n  __init__.py   v\n  a.py          one\n                wrapped b.py line\n"
            "  sub/          s\n    b.py        two\n    deep/       d\n      c.py      three\n"
            "  d.py          four\n```\n")
    assert layout_tree(text) == {"a.py", "sub/b.py", "sub/deep/c.py", "d.py"}


# ---- the import graph ----
@dataclass(frozen=True)
class Import:
    source: str
    target: str
    line: int


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


class _Imports(ast.NodeVisitor):
    """The package modules a module imports, at any depth (inside functions too), except under `if TYPE_CHECKING:`."""

    def __init__(self, name: str, is_package: bool, modules: set[str]):
        self.name, self.modules, self.found = name, modules, []
        self.package = name if is_package else name.rpartition(".")[0]

    def _add(self, target: str, line: int) -> None:
        while target and target not in self.modules: target = target.rpartition(".")[0]  # a name in a module
        found = Import(self.name, target, line)
        if target and target != self.name and found not in self.found: self.found.append(found)

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):  # annotations only: never run, so no import at run time
            for child in node.orelse: self.visit(child)
        else: self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name == "AIsaac" or alias.name.startswith("AIsaac."): self._add(alias.name, node.lineno)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            base = self.package.split(".")
            base = base[:len(base) - (node.level - 1)]
            target = ".".join(base + ([node.module] if node.module else []))
        else:
            target = node.module or ""
            if not (target == "AIsaac" or target.startswith("AIsaac.")): return
        for alias in node.names:  # `from . import metrics` imports the module AIsaac.callbacks.metrics
            sub = f"{target}.{alias.name}"
            self._add(sub if sub in self.modules else target, node.lineno)


def import_graph(files: dict[str, Path] | None = None) -> list[Import]:
    files = package_files() if files is None else files
    modules, imports = set(files), []
    for name, path in files.items():
        visitor = _Imports(name, path.name == "__init__.py", modules)
        visitor.visit(ast.parse(path.read_text(), filename=str(path)))
        imports += visitor.found
    return imports


def floor_of(module: str) -> int | None:
    """The floor of a dotted module name by FLOORS, or None when FLOORS does not place it."""
    parts = module.split(".")[1:] or ["__init__"]
    if len(parts) > 1 or f"{parts[0]}/" in FLOORS: return FLOORS.get(f"{parts[0]}/")
    return FLOORS.get(parts[0])


def cycles(imports: list[Import]) -> list[tuple[list[str], list[str]]]:
    """Each group of modules that import each other in a circle (a strongly connected component, by Tarjan's
    algorithm), as (its modules, the shortest cycle through the first of them: `[a, b, ..., a]`)."""
    graph: dict[str, set[str]] = {}
    for i in imports: graph.setdefault(i.source, set()).add(i.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack: low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                group.add(w)
                if w == v: break
            if len(group) > 1: groups.append(group)

    for v in sorted(graph):
        if v not in index: visit(v)
    found = []
    for group in groups:  # the shortest way back to the group's first module, breadth first
        start = min(group)
        paths, seen, cycle = [[start]], {start}, None
        while cycle is None:
            path = paths.pop(0)
            nxt = sorted(w for w in graph[path[-1]] if w in group)
            if start in nxt: cycle = path + [start]
            for w in nxt:
                if w not in seen:
                    seen.add(w)
                    paths.append(path + [w])
        found.append((sorted(group), cycle))
    return sorted(found)


def upward(imports: list[Import]) -> list[Import]:
    """The imports from a module to one on a higher floor."""
    return sorted((i for i in imports if None not in (floor_of(i.source), floor_of(i.target))
                   and floor_of(i.source) < floor_of(i.target)), key=lambda i: (i.source, i.target, i.line))


def _short(module: str) -> str: return module.removeprefix("AIsaac.") if module != "AIsaac" else "AIsaac/__init__"


def test_every_module_has_a_floor():
    unplaced = sorted(_short(m) for m in package_files() if floor_of(m) is None)
    assert not unplaced, f"modules on no floor: {unplaced}; add them (or their folder) to FLOORS in " \
        f"tests/test_layout.py"


def test_no_import_cycle_between_modules():
    found = cycles(import_graph())
    assert not found, f"{len(found)} group(s) of modules importing each other in a circle (imports inside " \
        f"functions count):\n" + "\n".join(f"  {' -> '.join(map(_short, cycle))}   (the group: "
                                           f"{', '.join(map(_short, group))})" for group, cycle in found)


def test_no_import_from_a_lower_floor_to_a_higher_one():
    found = upward(import_graph())
    assert not found, f"{len(found)} import(s) from a lower floor to a higher one (FLOORS in " \
        f"tests/test_layout.py):\n" + \
        "\n".join(f"  {_short(i.source)} (floor {floor_of(i.source)}, line {i.line}) imports {_short(i.target)} "
                  f"(floor {floor_of(i.target)})" for i in found)


def test_the_graph_reader_sees_lazy_and_relative_imports_but_not_type_checking_ones(tmp_path):
    pkg = tmp_path / "AIsaac"
    (pkg / "callbacks").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "callbacks" / "__init__.py").write_text("")
    (pkg / "trainer.py").write_text("from .callbacks import metrics\nimport AIsaac.events as ev\n")
    (pkg / "events.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .trainer import T\n"
                                   "else:\n    from . import exceptions\n")
    (pkg / "exceptions.py").write_text("def f():\n    from .callbacks.metrics import Mean\n")
    (pkg / "callbacks" / "metrics.py").write_text("from ..events import EVENTS\nfrom .. import trainer\n")
    files = {(".".join(p.relative_to(tmp_path).with_suffix("").parts)).removesuffix(".__init__"): p
             for p in pkg.rglob("*.py")}
    edges = {(i.source, i.target) for i in import_graph(files)}
    assert edges == {("AIsaac.trainer", "AIsaac.callbacks.metrics"), ("AIsaac.trainer", "AIsaac.events"),
                     ("AIsaac.events", "AIsaac.exceptions"), ("AIsaac.exceptions", "AIsaac.callbacks.metrics"),
                     ("AIsaac.callbacks.metrics", "AIsaac.events"), ("AIsaac.callbacks.metrics", "AIsaac.trainer")}
    group = ["AIsaac.callbacks.metrics", "AIsaac.events", "AIsaac.exceptions", "AIsaac.trainer"]
    assert cycles(import_graph(files)) == [(group, ["AIsaac.callbacks.metrics", "AIsaac.trainer",
                                                    "AIsaac.callbacks.metrics"])]
    assert [(i.source, i.target, i.line) for i in upward(import_graph(files))] == [
        ("AIsaac.callbacks.metrics", "AIsaac.trainer", 2), ("AIsaac.exceptions", "AIsaac.callbacks.metrics", 2)]
    del files["AIsaac.callbacks.metrics"]  # and without it, no cycle is left (events -> exceptions is not one)
    assert cycles(import_graph(files)) == []


# ---- tests mirror the package ----
def mirror_test(module: str) -> Path:
    """callbacks/metrics.py -> tests/callbacks/test_metrics.py; trainer.py -> tests/test_trainer.py."""
    path = Path(module)
    return ROOT / "tests" / path.parent / f"test_{path.name}"


def test_every_module_has_a_mirror_test_file():
    missing = sorted(m for m in package_modules() if m not in NO_MIRROR and not (
        mirror_test(m).exists() and re.search(r"^def test_", mirror_test(m).read_text(), flags=re.M)))
    stale = sorted(m for m in NO_MIRROR if m not in package_modules() or mirror_test(m).exists())
    assert not missing and not stale, (
        f"modules without a mirror test file tests/<folder>/test_<module>.py (with a test in it): "
        f"{[f'{m} -> {mirror_test(m).relative_to(ROOT)}' for m in missing] or 'none'}\n"
        f"NO_MIRROR entries for a module that is gone or now has its file: {stale or 'none'}")


if __name__ == "__main__":
    graph = import_graph()
    for f in sorted(set(FLOORS.values())):
        print(f"floor {f}: " + ", ".join(sorted(_short(m) for m in package_files() if floor_of(m) == f)))
    print("cycles:", *(" -> ".join(map(_short, c)) for _, c in cycles(graph)) or ["none"], sep="\n  ")
    print("upward imports:", *(f"{_short(i.source)}:{i.line} -> {_short(i.target)}" for i in upward(graph))
          or ["none"], sep="\n  ")
    sys.exit(0)
