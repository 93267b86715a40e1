"""Check that ``requirements.txt`` declares every third-party import, and nothing unused.

    python tools/check_requirements.py            # exit 1 and a list when something is wrong

Imports are read with :mod:`ast` from every ``.py`` file under the given folders and from the
code cells of every notebook (IPython ``!``/``%`` lines are dropped before parsing), including
imports inside functions. A module is third-party when it is neither in the standard library
nor one of the project's own modules. Packages needed only at run time, never imported by name,
are listed in :data:`RUNTIME_ONLY` with the reason.
"""

from __future__ import annotations

import ast
import json
import re
import sys
from pathlib import Path

# import name -> distribution name, where they differ
DISTRIBUTION = {
    "cv2": "opencv-python-headless",
    "PIL": "pillow",
    "sklearn": "scikit-learn",
    "tf_keras_vis": "tf-keras-vis",
    "yaml": "pyyaml",
}
# declared but never imported by name: why each is needed
RUNTIME_ONLY = {
    "ipykernel": "the python3 kernel papermill and nbval run notebooks in",
    "jinja2": "pandas' DataFrame.style (notebooks 02, 08)",
    "tabulate": "pandas' DataFrame.to_markdown (results table, README block)",
    "tensorboard": "tf.summary writes training.fit's TensorBoard logs only with it installed",
    "nbval": "pytest plugin: SKINLIB_PROFILE=smoke pytest --nbval-lax notebooks/",
}
SOURCE_DIRS = ("skinlib", "notebooks", "tools", "tests")


def normalise(name: str) -> str:
    """PEP 503 name: lower case, runs of ``-_.`` as one ``-``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def declared(requirements: Path) -> set[str]:
    """Distribution names in a requirements file (comments, options and markers dropped)."""
    names = set()
    for line in requirements.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", line)
        if not match:
            raise ValueError(f"{requirements}: cannot read the requirement {line!r}")
        names.add(normalise(match.group(0)))
    return names


def _sources(path: Path) -> list[str]:
    """Python source texts of a ``.py`` file or of a notebook's code cells."""
    if path.suffix == ".py":
        return [path.read_text()]
    cells = json.loads(path.read_text())["cells"]
    out = []
    for cell in cells:
        if cell["cell_type"] != "code":
            continue
        src = "".join(cell["source"])
        out.append("\n".join("" if ln.lstrip().startswith(("!", "%")) else ln
                             for ln in src.splitlines()))
    return out


def imported_modules(path: Path) -> set[str]:
    """Top-level names of every absolute import in a file (relative imports skipped)."""
    names = set()
    for text in _sources(path):
        try:
            tree = ast.parse(text, filename=str(path))
        except SyntaxError as err:
            raise ValueError(f"{path}: cannot parse ({err.msg}, line {err.lineno})") from err
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
    return names


def local_modules(root: Path) -> set[str]:
    """Names importable from the project itself: packages, and the modules of each folder."""
    names = set()
    for folder in [root, *(root / d for d in SOURCE_DIRS)]:
        if folder.is_dir():
            names.update(p.stem for p in folder.glob("*.py"))
            names.update(p.name for p in folder.iterdir() if (p / "__init__.py").exists())
    return names


def third_party_imports(root: Path) -> dict[str, set[str]]:
    """Distribution name -> files that import it, over the project's source folders."""
    stdlib, local = set(sys.stdlib_module_names) | {"__future__"}, local_modules(root)
    found: dict[str, set[str]] = {}
    for folder in SOURCE_DIRS:
        for path in sorted((root / folder).rglob("*")):
            if path.suffix not in (".py", ".ipynb") or ".ipynb_checkpoints" in path.parts:
                continue
            for mod in imported_modules(path) - stdlib - local:
                dist = normalise(DISTRIBUTION.get(mod, mod))
                found.setdefault(dist, set()).add(str(path.relative_to(root)))
    return found


def check(root: Path) -> dict[str, list[str]]:
    """``missing`` (imported, not declared) and ``unused`` (declared, never imported)."""
    have = declared(root / "requirements.txt")
    used = third_party_imports(root)
    runtime = {normalise(n) for n in RUNTIME_ONLY}
    missing = sorted(f"{d} (imported in {', '.join(sorted(used[d])[:3])})"
                     for d in set(used) - have)
    unused = sorted(have - set(used) - runtime)
    return {"missing": missing, "unused": unused}


def main() -> int:
    """Print the problems; exit 1 when there are any."""
    root = Path(__file__).resolve().parents[1]
    problems = check(root)
    for kind, items in problems.items():
        for item in items:
            print(f"{kind}: {item}")
    if any(problems.values()):
        print("requirements.txt does not match the imports: declare what is imported, drop what "
              "is not, or name a runtime-only need in tools/check_requirements.py RUNTIME_ONLY")
        return 1
    print("requirements.txt matches the imports")
    return 0


if __name__ == "__main__":
    sys.exit(main())
