"""The results table of the series (notebook 12): every model's metrics JSON of a run in one
table, written as ``metrics/summary.csv`` and ``metrics/summary.md``.

Rows are comparable only if they say what stands behind them, so each carries its training
budget (epochs run of epochs allowed, training images seen), its decision rule, how many seeds
(``repeats``) and the unit its 95% CIs resample (``lesion``).

Only files of kind ``model`` and ``comparison`` take part (:data:`skinlib.rundir.METRIC_KINDS`):
their models are all scored on the same lesion-grouped test split. ``facts`` files (EDA counts,
GAN quality, CAM checks, the leakage experiment whose models are tested on other splits) stay out.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from skinlib.config import MODEL_NOTEBOOKS
from skinlib.rundir import RunDir

# (column name, metrics key) of the summary table, in reading order.
TABLE_METRICS = (
    ("balanced accuracy", "balanced_accuracy"),
    ("macro AUC", "macro_auc"),
    ("accuracy", "accuracy"),
    ("macro F1", "macro_f1"),
    ("mel sens. @ 80% spec.", "mel_sensitivity_at_spec80"),
    ("ECE (l2, debiased)", "ece"),
)
TEXT_COLUMNS = ("model", "notebook", "image size", "decision", "CI unit")


def collect(run) -> dict[str, dict]:
    """Every model metrics dict of a run (:meth:`RunDir.load_metrics`), keyed by model name
    (in file-name order).

    Args:
        run: a ``RunDir`` or a run folder.

    Raises:
        MissingArtifactError: the run folder has no ``metrics/`` folder.
    """
    out = {}
    for d in (run if isinstance(run, RunDir) else RunDir(run)).load_metrics():
        name = str(d.get("model") or Path(d["source"]).stem)
        if name in out:  # two files name the same model: keep both, told apart by file
            name = f"{name} ({Path(d['source']).stem})"
        out[name] = d
    return out


def missing_notebooks(results: dict[str, dict]) -> list[str]:
    """Model notebooks of the series with no metrics JSON among ``results``."""
    stems = {Path(d.get("source", "")).stem for d in results.values()}
    return [nb for nb in MODEL_NOTEBOOKS if not any(s.startswith(nb[:3]) for s in stems)]


def _size(d: dict) -> str:
    """``image_size`` as ``HxW`` (or empty)."""
    size = d.get("image_size")
    if isinstance(size, list | tuple) and size:
        return "x".join(str(int(v)) for v in size)
    return "" if size is None else str(size)


def summary_table(results: dict[str, dict]) -> pd.DataFrame:
    """One row per model: notebook, image size, training time and budget (epochs run, epochs
    allowed, images seen), decision rule, seeds (``repeats``), the bootstrap's resampling unit
    and each metric with its 95% CI (columns ``<metric>``, ``<metric> lo``, ``<metric> hi``)."""
    if not results:
        raise ValueError("no model metrics to tabulate: collect() found no model in the run "
                         f"folder (the model notebooks are {', '.join(MODEL_NOTEBOOKS)})")
    rows = []
    for name, d in results.items():
        row = {"model": name, "notebook": Path(d.get("source", "")).stem[:2],
               "image size": _size(d), "train s": d.get("train_seconds"),
               "n train": d.get("n_train"), "epochs run": d.get("epochs_run"),
               "epochs max": d.get("epochs_max"), "images seen": d.get("images_seen"),
               "decision": d.get("decision", "argmax"), "repeats": d.get("repeats"),
               "CI unit": (d.get("bootstrap") or {}).get("unit", "image")}
        ci = d.get("ci95") or {}
        for col, key in TABLE_METRICS:
            lo, hi = (ci.get(key) or [None, None])[:2]
            row.update({col: d.get(key), f"{col} lo": lo, f"{col} hi": hi})
        rows.append(row)
    table = pd.DataFrame(rows)
    numeric = [c for c in table.columns if c not in TEXT_COLUMNS]
    table[numeric] = table[numeric].apply(pd.to_numeric, errors="coerce")
    return table


def _count(v, digits: int = 0) -> str:
    """A number for reading (blank when missing); thousands separated."""
    return "" if pd.isna(v) else f"{v:,.{digits}f}"


def formatted(table: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """The summary table for reading: epochs as ``run/max``, images seen in thousands, each
    metric as ``value (lo-hi)``."""
    out = table[["model", "notebook", "image size"]].copy()
    out["train s"] = [_count(v) for v in table["train s"]]
    out["epochs run/max"] = [f"{_count(r)}/{_count(m)}" if not pd.isna(r) else ""
                             for r, m in zip(table["epochs run"], table["epochs max"])]
    out["images seen (k)"] = [_count(v / 1000, 1) for v in table["images seen"]]
    out["decision"], out["repeats"] = table["decision"], [_count(v) for v in table["repeats"]]
    for col, _ in TABLE_METRICS:
        cells = []
        for v, lo, hi in zip(table[col], table[f"{col} lo"], table[f"{col} hi"]):
            if pd.isna(v):
                cells.append("n/a")
            elif pd.isna(lo) or pd.isna(hi):
                cells.append(f"{v:.{digits}f}")
            else:
                cells.append(f"{v:.{digits}f} ({lo:.{digits}f}-{hi:.{digits}f})")
        out[col] = cells
    return out


def to_markdown(frame: pd.DataFrame) -> str:
    """A GitHub Markdown table of a DataFrame via ``DataFrame.to_markdown`` (cells as their text,
    ``|`` escaped, missing values blank)."""
    def escape(v) -> str:
        return str(v).replace("|", "\\|")

    cells = frame.astype(object).where(frame.notna(), "").map(escape).rename(columns=escape)
    return cells.to_markdown(index=False, disable_numparse=True) + "\n"


def write_summary(table: pd.DataFrame, run) -> tuple[Path, Path]:
    """Write ``metrics/summary.csv`` (numbers) and ``metrics/summary.md`` (formatted table).

    Args:
        table: :func:`summary_table` output.
        run: the ``RunDir`` to write into.
    """
    folder = Path(run.metrics)
    folder.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = folder / "summary.csv", folder / "summary.md"
    table.to_csv(csv_path, index=False, float_format="%.4f", lineterminator="\n")
    md_path.write_text(to_markdown(formatted(table)))
    return csv_path, md_path


def display_names(results: dict[str, dict]) -> dict[str, dict]:
    """Short display names (model names without the notebook prefix where unique) -> dict."""
    short = {name: (name[3:] if name[:2].isdigit() and name[2:3] == "_" else name)
             for name in results}
    if len(set(short.values())) < len(short):
        return dict(results)
    return {short[name]: d for name, d in results.items()}
