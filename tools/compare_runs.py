"""Are two runs' metrics the same? For a restructure that must leave behaviour unchanged.

    python tools/compare_runs.py RUN_BEFORE RUN_AFTER [--tol 1e-9]

Compares every ``metrics/*.json`` present in both runs, value by value: numbers within ``tol``
(absolute), everything else equal. Keys that hold timings or paths are skipped. Keys present on
one side only are listed apart (a restructure may add keys such as ``kind``); a file present on
one side only is listed too. Exit 0 when no shared value differs and no file or key was lost.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

SKIP = {"train_seconds", "seconds", "wall_seconds", "source", "data", "path", "run_dir"}


def diff(a, b, where: str, out: dict, tol: float) -> None:
    """Record differences between two JSON values under ``out`` (differ/added/removed)."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            here = f"{where}.{key}"
            if key in SKIP:
                continue
            if key not in b:
                out["removed"].append(here)
            elif key not in a:
                out["added"].append(here)
            else:
                diff(a[key], b[key], here, out, tol)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            diff(x, y, f"{where}[{i}]", out, tol)
    elif (isinstance(a, int | float) and isinstance(b, int | float)
          and not isinstance(a, bool) and not isinstance(b, bool)):
        if not (math.isclose(a, b, rel_tol=0, abs_tol=tol)):
            out["differ"].append(f"{where}: {a!r} -> {b!r} (diff {b - a:+.3g})")
    elif a != b:
        out["differ"].append(f"{where}: {a!r} -> {b!r}")


def compare(before: Path, after: Path, tol: float = 1e-9) -> dict[str, list[str]]:
    """Differences between the metrics JSON files of two run folders."""
    out: dict[str, list[str]] = {"differ": [], "added": [], "removed": [], "compared": []}
    files_a = {p.name: p for p in (Path(before) / "metrics").glob("*.json")}
    files_b = {p.name: p for p in (Path(after) / "metrics").glob("*.json")}
    out["removed"] += [f"{n} (file)" for n in sorted(set(files_a) - set(files_b))]
    out["added"] += [f"{n} (file)" for n in sorted(set(files_b) - set(files_a))]
    for name in sorted(set(files_a) & set(files_b)):
        out["compared"].append(name)
        diff(json.loads(files_a[name].read_text()), json.loads(files_b[name].read_text()),
             name, out, tol)
    return out


def main(argv: list[str]) -> int:
    """Print the comparison; exit 1 when a shared value differs or something was lost."""
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    tol = float(argv[argv.index("--tol") + 1]) if "--tol" in argv else 1e-9
    res = compare(Path(argv[0]), Path(argv[1]), tol)
    print(f"compared {len(res['compared'])} files: {', '.join(res['compared'])}")
    for kind in ("differ", "removed", "added"):
        print(f"{kind}: {len(res[kind])}")
        for line in res[kind][:200]:
            print(f"  {line}")
    same = not res["differ"] and not res["removed"]
    print("SAME (within tolerance)" if same else "DIFFERENT")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
