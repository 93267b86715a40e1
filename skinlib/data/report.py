"""What loading a dataset found: :class:`LoadReport`, :class:`DataError` and the run's records."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import pandas as pd

from skinlib.rundir import RunDir

ATTRS_MAX_PROBLEMS = 50  # problems kept in df.attrs (pandas deep-copies attrs on every operation)
# Which problems make `data check` fail: training on such data would be wrong or incomplete.
FATAL_KINDS = {"no_metadata", "unreadable_metadata", "missing_columns", "unknown_dx",
               "unreadable_image", "no_image", "no_metadata_row", "empty_class",
               "blank_image_id", "conflicting_duplicate", "missing_folder"}
# Every metadata row is either kept or counted under exactly one of these.
ROW_COUNTS = ("rows_blank_image_id", "rows_duplicate_id", "rows_no_image", "rows_unknown_dx",
              "rows_unreadable", "rows_needs_conversion")
COUNT_KEYS = ("n_rows_metadata", "n_files_found", "n_duplicate_files", "n_images_found",
              "n_masks_ignored", *ROW_COUNTS, "images_without_row", "n_kept", "n_converted",
              "n_downscaled", "n_blank_lesion_id", "n_bad_age", "n_metadata_disagreements",
              "n_without_source_site")


class DataError(Exception):
    """A dataset cannot be used as it is; the message says what, where and the way out."""


@dataclass
class LoadReport:
    """What loading a dataset found, converted, skipped and why."""

    root: str
    dataset: str
    source: str
    metadata: str | None = None
    layout: str | None = None  # "csv" or "class_folders"
    counts: Counter = field(default_factory=lambda: Counter(dict.fromkeys(COUNT_KEYS, 0)))
    problems: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    seconds: dict = field(default_factory=dict)

    def add(self, path, problem: str, action: str, kind: str) -> None:
        """Record one problem; ``action`` is skipped | converted | counted | fatal."""
        self.problems.append({"path": str(path), "problem": problem, "action": action,
                              "kind": kind, "fatal": kind in FATAL_KINDS})

    @property
    def fatal(self) -> list:
        """Problems that stop loading (action ``fatal``)."""
        return [p for p in self.problems if p["action"] == "fatal"]

    def as_dict(self, max_problems: int | None = None) -> dict:
        """JSON-ready dict; ``max_problems`` caps the problem list (its full length is kept)."""
        problems = self.problems if max_problems is None else self.problems[:max_problems]
        return {"root": self.root, "dataset": self.dataset, "source": self.source,
                "metadata": self.metadata, "layout": self.layout,
                **{k: int(v) for k, v in sorted(self.counts.items())},
                "n_problems": len(self.problems), "problems": problems,
                "problems_truncated": len(problems) < len(self.problems),
                "problem_kinds": dict(Counter(p["kind"] for p in self.problems)),
                "notes": list(self.notes), "seconds": dict(self.seconds)}


def write_records(run_dir: RunDir, report: LoadReport) -> None:
    """Write ``logs/catalog_report.json`` and, if anything was skipped, ``logs/skipped.csv``."""
    run_dir.write_json("logs/catalog_report.json", report.as_dict())
    skipped = [p for p in report.problems if p["action"] in ("skipped", "fatal")]
    path = run_dir.logs / "skipped.csv"
    if skipped:
        pd.DataFrame(skipped, columns=["path", "problem", "action", "kind"]).to_csv(path,
                                                                                    index=False)
    elif path.exists():
        path.unlink()
