"""The one table renderer: plain text aligned column by column, and the same rows as escaped HTML."""
from AIsaac.display.tables import cell, column_widths, html_table, text_table


def test_text_table_aligns_each_column_to_its_widest_cell():
    text = text_table(["epoch", "train", "name"], [[0, 0.5, "a"], [10, 0.123456789, "longer"]])
    assert text.splitlines() == ["epoch  train     name",
                                 "-----  --------  ------",
                                 "0      0.500000  a",
                                 "10     0.123457  longer"]


def test_right_alignment_minimum_width_and_no_rule():
    text = text_table(["n", "what"], [[1, "x"], [100, "y"]], rule=False, right=[True], minimum=4)
    assert text.splitlines() == ["   n  what", "   1  x", " 100  y"]
    assert column_widths(["a", "bb"], [["ccc"]], minimum=1) == [3, 2]  # a short row counts where it has cells


def test_cells_write_floats_with_six_decimals_and_anything_else_as_str():
    assert [cell(v) for v in (0.1, 2.0, 3, "s", None, True)] == ["0.100000", "2.000000", "3", "s", "None", "True"]


def test_html_table_escapes_cells_and_keeps_the_rows():
    page = html_table(["a<b", "x"], [["1 & 2", 0.25], ["<i>", 3]])
    assert page == ("<table class='dataframe'><thead><tr><th>a&lt;b</th><th>x</th></tr></thead><tbody>"
                    "<tr><td>1 &amp; 2</td><td>0.250000</td></tr><tr><td>&lt;i&gt;</td><td>3</td></tr></tbody></table>")
