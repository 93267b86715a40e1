"""``python -m skinlib data check``: what loading a folder would find, without writing anything."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pandas as pd

from skinlib import info
from skinlib.data.catalog import build


def check_dataset(path, *, dataset: str = "ham10000") -> dict:
    """The ``data check`` report of a folder; reads everything, writes nothing.

    Returns:
        ``{"path", "dataset", "n_images", "n_lesions", "classes", "duplicates", "problems",
        "converted", "ok", "counts"}``. ``ok`` is False if anything would make training wrong
        (missing columns, unknown dx, unreadable images, rows without image, images without
        row, an empty class); duplicates and convertible images leave it True. Each problem
        has ``action`` (what loading does: skipped | converted | counted | fatal) and ``fatal``
        (whether it makes ``ok`` False).
    """
    df, report = build(Path(path), dataset, source="local", run_dir=None, validate=True,
                       dry_run=True)
    classes = info.classes(dataset)
    dx_counts = df["dx"].value_counts() if len(df) else pd.Series(dtype=int)
    counts = report.counts
    return {
        "path": str(Path(path).expanduser().resolve()),
        "dataset": dataset,
        "n_images": int(len(df)),
        "n_lesions": int(df["lesion_id"].nunique()) if len(df) else 0,
        "classes": {dx: int(dx_counts.get(dx, 0)) for dx in classes},
        "duplicates": int(counts["n_duplicate_files"] + counts["rows_duplicate_id"]),
        "problems": report.problems,
        "converted": int(counts["n_converted"]),
        "ok": not any(p["fatal"] for p in report.problems),
        "counts": {k: int(v) for k, v in sorted(counts.items())},
    }


def format_report(check: dict, max_problems: int = 30) -> str:
    """Readable text of a :func:`check_dataset` dict (what ``data check`` prints)."""
    lines = [f"{check['path']} ({check['dataset']}): {check['n_images']} usable images, "
             f"{check['n_lesions']} lesions, {check['duplicates']} duplicates dropped, "
             f"{check['converted']} to convert"]
    lines += [f"  {dx:6s} {n:6d}" for dx, n in check["classes"].items()]
    problems = check["problems"]
    if problems:
        kinds = Counter((p["kind"], p["action"], p["fatal"]) for p in problems)
        lines.append(f"{len(problems)} problem(s):")
        lines += [f"  {n:6d} {kind} ({action}{', fatal' if fatal and action != 'fatal' else ''})"
                  for (kind, action, fatal), n in kinds.most_common()]
        shown = sorted(problems, key=lambda p: not p["fatal"])[:max_problems]
        lines += [f"  {'FATAL' if p['fatal'] else 'note '} {p['path']}: {p['problem']}"
                  for p in shown]
        if len(problems) > len(shown):
            lines.append(f"  ... and {len(problems) - len(shown)} more (use --json for all)")
    lines.append("OK: ready for training" if check["ok"]
                 else "NOT OK: fix the FATAL problems above before training")
    return "\n".join(lines)
