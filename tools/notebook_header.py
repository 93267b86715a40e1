"""Write the "Open in Colab" badges and every notebook's setup cell from one address.

    python tools/notebook_header.py          # rewrite notebooks/*.ipynb and the README block
    python tools/notebook_header.py --check  # exit 1 if anything is out of date (a test runs it)

The repository address lives only in ``pyproject.toml`` (``[project.urls] Repository``). Each
notebook gets a badge under its title and, as its first code cell (tagged ``setup``), a cell
that in Colab installs skinlib from that address (a plain, non-editable install into the
running kernel's site-packages, so no runtime restart is needed) and fetches HAM10000 with
kagglehub, and everywhere prints the profile, the data and the measured run time
(:func:`skinlib.notebook.intro`).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
BADGE_IMG = "https://colab.research.google.com/assets/colab-badge.svg"
README_START, README_END = "<!-- colab:start -->", "<!-- colab:end -->"

SETUP = '''\
# Setup (written by tools/notebook_header.py). Only in Colab: install skinlib from GitHub (a
# plain install, no runtime restart needed) and fetch HAM10000 with kagglehub. Everywhere: say
# which profile and data this notebook will use and how long it took in measured runs.
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up logs out
if "google.colab" in sys.modules:
    import importlib
    import subprocess

    source = os.environ.get("SKINLIB_INSTALL_FROM", "git+{repo}.git@{branch}")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", source], check=True)
    importlib.invalidate_caches()
    if "SKINLIB_DATA" not in os.environ:
        from skinlib import data as _data

        os.environ["SKINLIB_DATA"] = str(_data.download_kaggle())
from skinlib import notebook

notebook.intro("{name}")'''


def repository(pyproject: Path = ROOT / "pyproject.toml") -> str:
    """The ``Repository`` URL of ``[project.urls]``."""
    text = pyproject.read_text()
    section = re.search(r"^\[project\.urls\]\s*$(.*?)(^\[|\Z)", text, re.M | re.S)
    match = section and re.search(r'^Repository\s*=\s*"([^"]+)"', section.group(1), re.M)
    if not match:
        raise ValueError(f"{pyproject}: no Repository = \"...\" under [project.urls]")
    return match.group(1).rstrip("/")


def colab_url(repo: str, name: str, branch: str = "main") -> str:
    """Colab's address for a notebook of a GitHub repository."""
    path = repo.split("github.com/", 1)[-1]
    return f"https://colab.research.google.com/github/{path}/blob/{branch}/notebooks/{name}.ipynb"


def badge(repo: str, name: str) -> str:
    """Markdown of the "Open in Colab" badge of one notebook."""
    return f"[![Open In Colab]({BADGE_IMG})]({colab_url(repo, name)})"


def setup_source(repo: str, name: str, branch: str = "main") -> str:
    """The setup cell of notebook ``name``."""
    return SETUP.replace("{repo}", repo).replace("{branch}", branch).replace("{name}", name)


def _with_badge(title: str, line: str) -> str:
    """A title cell's text with the badge line right under its heading (idempotent)."""
    lines = [ln for ln in title.split("\n") if "colab-badge.svg" not in ln]
    rest = lines[1:]
    while rest and not rest[0].strip():
        rest = rest[1:]
    return "\n".join([lines[0], "", line, ""] + rest)


def update_notebook(path: Path, repo: str) -> bool:
    """Put the badge and the setup cell into one notebook; True if it changed."""
    nb = nbformat.read(path, as_version=4)
    before = nbformat.writes(nb)
    name = path.stem
    title = nb.cells[0]
    if title.cell_type != "markdown":
        raise ValueError(f"{path}: the first cell must be the markdown title")
    title.source = _with_badge(title.source, badge(repo, name))
    first = nb.cells[1] if len(nb.cells) > 1 else None
    if first is None or "setup" not in first.metadata.get("tags", []):
        first = nbformat.v4.new_code_cell(metadata={"tags": ["setup"]})
        nb.cells.insert(1, first)
        first.pop("id", None)
    first.source = setup_source(repo, name)
    after = nbformat.writes(nb)
    if after != before:
        path.write_text(after + ("" if after.endswith("\n") else "\n"))
    return after != before


def readme_block(repo: str, names: list[str]) -> str:
    """The README's Colab section: one badge per notebook."""
    rows = "\n".join(f"| `{n}` | {badge(repo, n)} |" for n in names)
    return (f"{README_START}\n| notebook | open in Colab |\n|---|---|\n{rows}\n{README_END}")


def update_readme(readme: Path, repo: str, names: list[str]) -> bool:
    """Replace the README's Colab block; True if it changed."""
    text = readme.read_text()
    if README_START not in text:
        raise ValueError(f"{readme}: no {README_START} ... {README_END} block")
    new = re.sub(re.escape(README_START) + ".*?" + re.escape(README_END),
                 lambda _: readme_block(repo, names), text, flags=re.S)
    if new != text:
        readme.write_text(new)
    return new != text


def main(argv: list[str]) -> int:
    """Update everything (or, with ``--check``, only report what is out of date)."""
    check = "--check" in argv
    repo = repository()
    paths = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if check:
        stale = [p.name for p in paths
                 if nbformat.writes(nbformat.read(p, as_version=4)) != _updated_text(p, repo)]
        readme = (ROOT / "README.md").read_text()
        if readme_block(repo, [p.stem for p in paths]) not in readme:
            stale.append("README.md")
        for name in stale:
            print(f"out of date: {name} (run python tools/notebook_header.py)")
        return 1 if stale else 0
    changed = [p.name for p in paths if update_notebook(p, repo)]
    if update_readme(ROOT / "README.md", repo, [p.stem for p in paths]):
        changed.append("README.md")
    print("updated: " + (", ".join(changed) or "nothing"))
    return 0


def _updated_text(path: Path, repo: str) -> str:
    """What :func:`update_notebook` would write, without writing."""
    import shutil
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / path.name
        shutil.copyfile(path, copy)
        update_notebook(copy, repo)
        return nbformat.writes(nbformat.read(copy, as_version=4))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
