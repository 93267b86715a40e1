"""Every figure of the series is read to the student, and no parameter comment goes stale.

Conventions (checked on the committed notebooks, no kernel needed):

- A code cell *shows a figure* when it calls ``plt.show()``, a ``plots.<function>(...)`` other
  than ``plots.save``, or ``display(Image(...))``.
- Such a cell is *read* when its own code calls ``print(`` after its last figure line (the
  reading, usually a skinlib helper that builds the sentence from the run's numbers), or when the
  next cell is a reading: a markdown cell that is not a section heading (does not start with
  ``#``), or a code cell that shows no figure and prints.
- A comment in a ``parameters`` cell states no number: a value typed there goes stale when a
  profile changes (notebook 03 said "quick: 1500" while the profile had 400). Allowed: examples
  in braces, such as ``{"epochs": 3}``, and names that hold digits ("ISIC 2019", "notebook
  02"). Say "the profile's value" instead; the notebook prints the values it uses.
"""

from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))

_FIGURE = re.compile(r"plt\.show\(|\bplots\.(?!save\b)\w+\(|display\(\s*Image\(")
_PRINT = re.compile(r"\bprint\(")
_NAMES = re.compile(r"\{[^}]*\}|\b(ISIC|notebooks?)\s+\d+")


def _figure_lines(source: str) -> list[int]:
    """Indices of the lines of a code cell that show (or build) a figure."""
    return [i for i, line in enumerate(source.splitlines())
            if _FIGURE.search(line.split("#", 1)[0])]


def _is_reading(cell) -> bool:
    """Whether a cell, placed after a figure cell, reads the figure to the student."""
    if cell.cell_type == "markdown":
        return bool(cell.source.strip()) and not cell.source.lstrip().startswith("#")
    return (cell.cell_type == "code" and not _figure_lines(cell.source)
            and bool(_PRINT.search(cell.source)))


def unread_figures(nb) -> list[str]:
    """The figure cells of a notebook that nothing reads: 'cell N: first line'."""
    missing = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        lines = _figure_lines(cell.source)
        if not lines:
            continue
        after = "\n".join(cell.source.splitlines()[lines[-1] + 1:])
        if _PRINT.search(after):
            continue
        if i + 1 < len(nb.cells) and _is_reading(nb.cells[i + 1]):
            continue
        missing.append(f"cell {i}: {cell.source.splitlines()[lines[0]].strip()}")
    return missing


def _comments(source: str) -> list[tuple[int, str]]:
    """(line number, text) of every comment of a code cell."""
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    return [(t.start[0], t.string) for t in tokens if t.type == tokenize.COMMENT]


def numbers_in_parameter_comments(nb) -> list[str]:
    """Comments of the ``parameters`` cell that state a number (outside ``{...}`` examples
    and names such as "ISIC 2019")."""
    found = []
    for cell in nb.cells:
        if cell.cell_type != "code" or "parameters" not in cell.metadata.get("tags", []):
            continue
        for line, text in _comments(cell.source):
            bare = _NAMES.sub("", text)
            if re.search(r"\d", bare):
                found.append(f"line {line}: {text}")
    return found


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_figure_is_read_and_no_parameter_comment_states_a_number(path):
    nb = nbformat.read(path, as_version=4)
    problems = []
    if unread := unread_figures(nb):
        problems.append(
            f"figure cell(s) with no reading: {unread}. After the figure, print a sentence "
            "built from the run's numbers (a skinlib helper, e.g. "
            "print(eda.reading_class_counts(catalog))) or follow the cell with a markdown cell "
            "that says what the figure shows (not a '## ' heading)")
    if stated := numbers_in_parameter_comments(nb):
        problems.append(
            f"parameters-cell comment(s) state numbers that go stale when a profile changes: "
            f"{stated}. Write \"the profile's value\" instead (the notebook prints the values "
            "it uses), or put an example in braces such as {\"epochs\": 3}")
    assert not problems, f"{path.name}: " + "; ".join(problems)


def test_the_conventions_catch_what_they_should():
    """A figure followed by a heading is unread; a reading print, a note or a typed
    number in a parameter comment are told apart."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("fig = plots.class_counts(df)\nplt.show()"),
        nbformat.v4.new_markdown_cell("## 2. Next section"),
        nbformat.v4.new_code_cell("print('a')\nfig = plots.roc_curves(y, p, c)\nplt.show()"),
        nbformat.v4.new_code_cell("x = 1"),
        nbformat.v4.new_code_cell("fig = plots.history(h)\nplt.show()\nprint(reading(h))"),
        nbformat.v4.new_code_cell("plots.save(fig, run, 'a')"),
        nbformat.v4.new_code_cell("fig = plots.gan_losses(l)\nplt.show()"),
        nbformat.v4.new_code_cell("print(captions.gan_losses(l))"),
        nbformat.v4.new_code_cell("display(Image('a.png'))"),
        nbformat.v4.new_markdown_cell("The diagram shows the branches."),
    ]
    assert unread_figures(nb) == ["cell 0: fig = plots.class_counts(df)",
                                  "cell 2: fig = plots.roc_curves(y, p, c)"]
    params = nbformat.v4.new_code_cell(
        'epochs = None  # None: the profile\'s value (quick: 1500)\n'
        'overrides = {}  # e.g. {"epochs": 3}\nmode = "a"  # a | b\n'
        'isic = None  # the ISIC 2019 CSVs, as in notebook 01\nn = 2  # in practice 30 on a GPU\n',
        metadata={"tags": ["parameters"]})
    nb.cells = [params]
    assert numbers_in_parameter_comments(nb) == [
        "line 1: # None: the profile's value (quick: 1500)", "line 5: # in practice 30 on a GPU"]


def test_set_overrides_win_over_notebook_knobs_left_at_none():
    """``--set epochs=12`` reaches the notebook as ``overrides``; a knob left at None must not
    undo it, so ``**overrides`` comes last wherever a notebook merges its knobs into it."""
    import re

    for path in sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            for merged in re.findall(r"\{[^{}]*\*\*overrides[^{}]*\}", cell.source):
                assert merged.rstrip("} \n").endswith("**overrides"), (path.name, merged)
