"""docs/architecture.md lists every module of skinlib, and nothing that does not exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _table_modules() -> list[str]:
    text = (ROOT / "docs" / "architecture.md").read_text()
    return re.findall(r"^\| `([a-z_/]+)` \|", text, flags=re.M)


def _package_modules() -> set[str]:
    pkg = ROOT / "skinlib"
    return {p.relative_to(pkg).with_suffix("").as_posix() for p in pkg.rglob("*.py")
            if p.stem not in ("__init__", "__main__")}


def test_every_module_is_on_the_map_and_every_row_exists():
    listed = _table_modules()
    assert len(listed) == len(set(listed)), "a module is listed twice"
    assert set(listed) == _package_modules()


def test_no_function_is_longer_than_50_lines():
    import ast

    long = []
    for path in (ROOT / "skinlib").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = node.end_lineno - node.lineno + 1
                if n > 50:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({n} lines)")
    assert not long, long
