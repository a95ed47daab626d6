"""The API reference renders as a newcomer reads it: each class opens with its constructor's signature, wrapped;
members come in the order the source declares them; Google docstring sections ("Attributes:") become tables.

Builds a small site with mkdocs.yml's mkdocstrings options (the Trainer's page, Callback's, a callback's, and a
sample module), so a change of those options is checked here, in seconds, rather than by eye.
"""
import ast
import inspect
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")
pytest.importorskip("mkdocstrings_handlers.python", reason="the docs tests need the [docs] extra: pip install -e '.[docs]'")
pytest.importorskip("black", reason="signatures are wrapped by Black (in the [docs] extra)")

from AIsaac.trainer import Trainer

pytestmark = pytest.mark.docs
ROOT = Path(__file__).resolve().parents[2]

SAMPLE = '''"""A sample module."""


class Sample:
    """One line.

    Attributes:
        epoch (int): the current epoch, set by the trainer.
        loss (float): written by the step callbacks.
    """

    def __init__(self, first_argument: int, second_argument: str = "a default value", *,
                 third_argument: float = 1.0, fourth_argument: list[int] | None = None):
        self.epoch, self.loss = 0, 0.0

    def zulu(self) -> None:
        """Declared first."""

    def alpha(self) -> None:
        """Declared second."""
'''


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("api_site")
    (tmp / "sample_module.py").write_text(SAMPLE)
    docs = tmp / "docs"
    for page in ("trainer", "callback", "callbacks/activation_stats", "callbacks/metrics"):
        (docs / page).parent.mkdir(parents=True, exist_ok=True)
        (docs / f"{page}.md").write_text((ROOT / "docs" / "api" / f"{page}.md").read_text())
    (docs / "sample.md").write_text("# Sample\n\n::: sample_module\n")
    project = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    handler = next(p["mkdocstrings"] for p in project["plugins"] if isinstance(p, dict) and "mkdocstrings" in p)
    handler["handlers"]["python"]["paths"] = [str(ROOT), str(tmp)]
    config = {"site_name": "api", "docs_dir": str(docs), "site_dir": str(tmp / "site"), "theme": project["theme"],
              "plugins": ["autorefs", {"mkdocstrings": handler}]}
    (tmp / "mkdocs.yml").write_text(yaml.safe_dump(config))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    run = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(tmp / "mkdocs.yml")],
                         capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    return tmp / "site"


def html(site, page): return (site / page / "index.html").read_text()


def signature_after_heading(page: str, object_id: str) -> str:
    """The text of the signature block right under `object_id`'s heading (no other content between them)."""
    m = re.search(rf'<h2 id="{re.escape(object_id)}".*?</h2>\s*<div class="doc-signature highlight">(.*?)</div>',
                  page, re.S)
    assert m, f"{object_id}: no signature right under its heading"
    return re.sub(r"<[^>]+>", "", m.group(1))


def test_the_trainer_page_opens_with_the_constructor_signature_wrapped(site):
    signature = signature_after_heading(html(site, "trainer"), "AIsaac.trainer.Trainer")
    params = [p for p in inspect.signature(Trainer.__init__).parameters if p != "self"]
    lines = [l.strip() for l in signature.strip().splitlines()]
    assert lines[0] == "Trainer(" and lines[-1] == ")", signature
    assert [l.split(":")[0].split("=")[0].strip(" *,") for l in lines[1:-1]] == params  # one parameter a line


def methods_in_source_order(cls) -> list[str]:
    """The public methods and properties with a docstring that `cls` itself declares, in the order of its source."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    return [node.name for node in tree.body[0].body if isinstance(node, ast.FunctionDef)
            and not node.name.startswith("_") and ast.get_docstring(node)]


def test_the_trainer_page_documents_every_method_in_source_order(site):
    shown = re.findall(r'<h3 id="AIsaac\.trainer\.Trainer\.(\w+)"', html(site, "trainer"))
    for name in ("fit", "get_preds", "predict", "save", "load", "export", "lr_find", "validate"): assert name in shown
    own = methods_in_source_order(Trainer)
    assert [n for n in shown if n in own] == own


def test_a_callback_page_opens_with_its_constructor(site):
    signature = signature_after_heading(html(site, "callbacks/activation_stats"),
                                        "AIsaac.callbacks.activation_stats.ActivationStatsCB")
    assert signature.strip().startswith("ActivationStatsCB(") and "module_filter" in signature


def test_a_class_page_opens_with_the_class_its_example_and_its_constructor_then_the_helpers(site):
    """MetricsCB's page: its name, a short example, the class with its constructor; the module's helpers after."""
    page = html(site, "callbacks/metrics")
    title = re.search(r"<h1[^>]*>(.*?)</h1>", page, re.S).group(1)
    assert re.sub(r"<[^>]+>", "", title).strip().startswith("MetricsCB")
    article = page[page.index("<h1"):]
    example = article.index('<code class="language-python">')
    heading = article.index('<h2 id="AIsaac.callbacks.metrics.MetricsCB"')
    helpers = article.index("More in")
    assert example < heading < helpers and "MetricsCB(Accuracy=Accuracy())" in re.sub(r"<[^>]+>", "", article[:heading])
    signature = signature_after_heading(page, "AIsaac.callbacks.metrics.MetricsCB")
    assert signature.strip().startswith("MetricsCB(")
    assert article.count('id="AIsaac.callbacks.metrics.MetricsCB"') == 1  # shown once, not again among the helpers
    assert 'id="AIsaac.callbacks.metrics.optimizer_records"' in article[helpers:]


def test_docstring_sections_render_as_tables_and_members_keep_the_source_order(site):
    page = html(site, "sample")
    signature = signature_after_heading(page, "sample_module.Sample")
    assert len(signature.strip().splitlines()) == 7  # wrapped at line_length: one line per argument and for `*`
    table = re.search(r"<table>.*?</table>", page[page.index("Attributes"):], re.S).group(0)
    cells = " ".join(re.sub(r"<[^>]+>", " ", table).split())
    assert "Name Type Description epoch int the current epoch, set by the trainer. loss float" in cells
    assert page.index('id="sample_module.Sample.zulu"') < page.index('id="sample_module.Sample.alpha"')


def test_the_trainer_attributes_table_has_one_attribute_a_row_each_with_its_type_and_writer(site):
    """One row per attribute (not "lr, n_epochs (int | None), ..." lumped in one), every piece of the trainer's state
    listed, each with a type and a description that opens with who writes it."""
    import torch
    from torch import nn
    from AIsaac.all import BasicTrainCB, DataLoaders
    page = html(site, "trainer")
    table = re.search(r"<table>.*?</table>", page[page.index("Attributes:"):], re.S).group(0)
    rows = [[re.sub(r"<[^>]+>|\s+", " ", cell).strip() for cell in re.findall(r"<td>(.*?)</td>", row, re.S)]
            for row in re.findall(r'<tr class="doc-section-item">(.*?)</tr>', table, re.S)]
    names = [name for name, _, _ in rows]
    assert all(name.isidentifier() for name in names) and len(set(names)) == len(names), names
    assert all(kind and description for _, kind, description in rows), rows
    writers = ("From `Trainer(...)`", "Set by", "Filled by", "Yours to set", "The event names")
    docstring = inspect.getdoc(Trainer)
    assert all(any(f"{name} (" in line and writers_ in line for line in docstring.splitlines() for writers_ in writers)
               for name in names)
    x, y = torch.randn(8, 3), torch.randint(0, 2, (8,))
    trainer = Trainer(DataLoaders.from_tensors((x, y), (x, y), batch_size=4), nn.CrossEntropyLoss(), torch.optim.SGD,
                      nn.Linear(3, 2), [BasicTrainCB()])
    trainer.fit(1)
    # The callbacks are attributes too (`trainer.BasicTrainCB`), reached by name rather than listed as state; the
    # trainer's own are its slots, what callbacks set is in its dict.
    state = {n for n in (*Trainer.__slots__, *vars(trainer)) if not n.startswith("_") and n not in trainer.named_callbacks}
    state |= {n for n in Trainer.__annotations__ if not n.startswith("_")}
    assert sorted(state - set(names)) == [] and sorted(set(names) - state) == []
