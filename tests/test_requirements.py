"""requirements.txt declares every third-party import of the project, and nothing unused."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import check_requirements as cr  # noqa: E402


def test_project_requirements_match_its_imports():
    problems = cr.check(ROOT)
    assert problems == {"missing": [], "unused": []}, problems


def _tree(tmp_path: Path, requirements: str, code: str, cell: str = "") -> Path:
    (tmp_path / "skinlib").mkdir()
    (tmp_path / "skinlib" / "__init__.py").write_text("")
    (tmp_path / "skinlib" / "core.py").write_text(code)
    (tmp_path / "notebooks").mkdir()
    nb = {"cells": [{"cell_type": "code", "source": cell.splitlines(True), "metadata": {}},
                    {"cell_type": "markdown", "source": ["import notapackage\n"],
                     "metadata": {}}]}
    (tmp_path / "notebooks" / "01_x.ipynb").write_text(json.dumps(nb))
    (tmp_path / "requirements.txt").write_text(requirements)
    return tmp_path


def test_checker_finds_a_missing_package(tmp_path):
    root = _tree(tmp_path, "numpy>=1\n",
                 "import os\nimport numpy as np\nfrom . import core\n"
                 "def f():\n    from sklearn.metrics import auc\n    import skinlib.core\n")
    problems = cr.check(root)
    assert [m.split()[0] for m in problems["missing"]] == ["scikit-learn"]
    assert "skinlib/core.py" in problems["missing"][0]
    assert problems["unused"] == []


def test_checker_reads_notebook_code_cells_and_skips_shell_lines(tmp_path):
    root = _tree(tmp_path, "numpy\n", "import numpy\n",
                 cell="!pip install something\n%matplotlib inline\nimport cv2\n")
    assert [m.split()[0] for m in cr.check(root)["missing"]] == ["opencv-python-headless"]


def test_checker_finds_an_unused_package_but_accepts_runtime_only_needs(tmp_path):
    root = _tree(tmp_path, "numpy  # arrays\nseaborn==0.13\njinja2>=3\n-e .\n", "import numpy\n")
    assert cr.check(root) == {"missing": [], "unused": ["seaborn"]}


def test_checker_names_an_unreadable_file(tmp_path):
    root = _tree(tmp_path, "numpy\n", "import numpy\ndef (:\n")
    with pytest.raises(ValueError, match="core.py"):
        cr.check(root)
