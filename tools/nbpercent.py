"""Convert notebooks to and from the "percent" script format, for editing and review.

    python tools/nbpercent.py to-py notebooks/02_baseline_cnn.ipynb  > /tmp/02.py
    python tools/nbpercent.py to-ipynb /tmp/02.py notebooks/02_baseline_cnn.ipynb

Cells start with ``# %%`` (code; ``# %% tags=["parameters"]`` adds tags) or
``# %% [markdown]`` (each markdown line is written as ``# text``). Written notebooks have no
outputs, no execution counts and the portable ``python3`` kernel.
"""

from __future__ import annotations

import json
import re
import sys

import nbformat

HEADER = re.compile(r"^# %%(?P<md> \[markdown\])?(?: tags=(?P<tags>\[.*\]))?\s*$")


def to_py(nb_path: str) -> str:
    """The notebook as a percent-format script."""
    nb = nbformat.read(nb_path, as_version=4)
    parts = []
    for cell in nb.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        head = "# %%" + (" [markdown]" if cell.cell_type == "markdown" else "")
        if tags:
            head += " tags=" + json.dumps(tags)
        body = cell.source
        if cell.cell_type == "markdown":
            body = "\n".join(("# " + line) if line else "#" for line in body.splitlines())
        parts.append(head + "\n" + body)
    return "\n\n".join(parts) + "\n"


def to_ipynb(text: str) -> nbformat.NotebookNode:
    """A clean notebook from a percent-format script."""
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                  "language": "python"},
                   "language_info": {"name": "python"}}
    cells, current = [], None
    for line in text.splitlines():
        m = HEADER.match(line)
        if m:
            current = {"md": bool(m.group("md")),
                       "tags": json.loads(m.group("tags")) if m.group("tags") else [], "lines": []}
            cells.append(current)
        elif current is not None:
            current["lines"].append(line)
    for c in cells:
        lines = c["lines"]
        while lines and not lines[-1].strip():
            lines.pop()
        if c["md"]:
            src = "\n".join(ln[2:] if ln.startswith("# ") else ln.lstrip("#") for ln in lines)
            cell = nbformat.v4.new_markdown_cell(src)
        else:
            cell = nbformat.v4.new_code_cell("\n".join(lines))
        if c["tags"]:
            cell.metadata["tags"] = c["tags"]
        cell.pop("id", None)
        nb.cells.append(cell)
    nb.nbformat_minor = 4
    return nb


def main(argv: list[str]) -> int:
    """CLI: ``to-py NB`` prints a script; ``to-ipynb SCRIPT NB`` writes a notebook."""
    if len(argv) == 2 and argv[0] == "to-py":
        sys.stdout.write(to_py(argv[1]))
        return 0
    if len(argv) == 3 and argv[0] == "to-ipynb":
        with open(argv[1]) as fh:
            nb = to_ipynb(fh.read())
        nbformat.write(nb, argv[2])
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
