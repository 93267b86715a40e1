"""Finding, validating and loading a dataset into one catalog DataFrame.

Sources: ``local`` (any folder, searched recursively for the metadata CSV and ``ISIC_*`` image
files), ``kaggle`` (kagglehub download, then read as a local folder) and ``synthetic`` (a tiny
HAM10000 look-alike in the Kaggle layout, written on the fly). Every image a catalog points at
is an RGB JPEG that decodes in full; anything else is converted, or skipped and counted, and
the report says which and why (see DESIGN.md, "Bad input").
"""

from __future__ import annotations

import colorsys
import csv
import json
import os
import re
import shutil
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from skinlib import images, info
from skinlib.rundir import RunDir, default_run_dir, project_root

CATALOG_COLUMNS = ["image_id", "lesion_id", "dx", "label", "path", "age", "sex", "localization",
                   "dx_type", "source", "dataset"]
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
ATTRS_MAX_PROBLEMS = 50  # problems kept in df.attrs (pandas deep-copies attrs on every operation)
SYNTHETIC_VERSION = 1
SYNTHETIC_MARKER = "synthetic.json"
_ISIC_NAME = re.compile(r"^isic_.*\.(jpe?g|png)$", re.IGNORECASE)
# Which problems make `data check` fail: training on such data would be wrong or incomplete.
_FATAL_KINDS = {"no_metadata", "unreadable_metadata", "missing_columns", "unknown_dx",
                "unreadable_image", "no_image", "no_metadata_row", "empty_class",
                "blank_image_id", "conflicting_duplicate", "missing_folder"}
_ROW_COUNTS = ("rows_blank_image_id", "rows_duplicate_id", "rows_no_image", "rows_unknown_dx",
               "rows_unreadable", "rows_needs_conversion")
_COUNT_KEYS = ("n_rows_metadata", "n_files_found", "n_duplicate_files", "n_images_found",
               "n_masks_ignored", *_ROW_COUNTS, "images_without_row", "n_kept", "n_converted",
               "n_downscaled", "n_blank_lesion_id", "n_bad_age")


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
    counts: Counter = field(default_factory=lambda: Counter(dict.fromkeys(_COUNT_KEYS, 0)))
    problems: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    seconds: dict = field(default_factory=dict)

    def add(self, path, problem: str, action: str, kind: str) -> None:
        """Record one problem; ``action`` is skipped | converted | counted | fatal."""
        self.problems.append({"path": str(path), "problem": problem, "action": action,
                              "kind": kind, "fatal": kind in _FATAL_KINDS})

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


# ----------------------------------------------------------------------------- public API


def load_catalog(data="auto", *, dataset: str = "ham10000", run_dir=None, profile=None,
                 validate: bool = True) -> pd.DataFrame:
    """The catalog of a dataset from ``auto`` | ``synthetic`` | ``kaggle`` | a folder path.

    ``auto`` uses ``$SKINLIB_DATA`` if set, else ``<project root>/data`` if it holds a metadata
    CSV, else kagglehub. ``synthetic`` writes ``make_synthetic(<run_dir>/synthetic_data, ...)``
    with the profile's ``synthetic_images`` (420 if unset) and seed.

    Returns:
        One row per image, sorted by ``image_id``, columns :data:`CATALOG_COLUMNS`;
        ``df.attrs["classes"]`` and ``df.attrs["report"]`` (see :class:`LoadReport`).

    Raises:
        DataError: the metadata is missing or unusable, or a class ends with no images.
    """
    info.classes(dataset)
    data = "auto" if data is None else data
    if isinstance(data, str) and data == "auto":
        env = os.environ.get("SKINLIB_DATA")
        if env and env != "auto":
            return load_catalog(env, dataset=dataset, run_dir=run_dir, profile=profile,
                                validate=validate)
        local = project_root() / "data"
        if local.is_dir() and _find_metadata(_walk(local)[0], dataset):
            return load_local(local, dataset=dataset, run_dir=run_dir, validate=validate)
        data = "kaggle"
    if isinstance(data, str) and data == "synthetic":
        if dataset != "ham10000":
            raise DataError(f"the synthetic source only imitates HAM10000, not {dataset!r}: "
                            f"use dataset='ham10000' or pass a folder of {dataset} data")
        seed = getattr(profile, "seed", 42)
        n_images = getattr(profile, "synthetic_images", 0) or 420
        rd = _run_dir(run_dir) or RunDir(default_run_dir(getattr(profile, "name", "smoke")))
        root = make_synthetic(rd.root / "synthetic_data", n_images=n_images, seed=seed)
        return _load(root, dataset, source="synthetic", run_dir=rd, validate=validate)
    if isinstance(data, str) and data == "kaggle":
        root = download_kaggle(dataset)
        return _load(root, dataset, source="kaggle", run_dir=_run_dir(run_dir), validate=validate)
    return load_local(data, dataset=dataset, run_dir=run_dir, validate=validate)


def load_local(root, *, dataset: str = "ham10000", run_dir=None,
               validate: bool = True) -> pd.DataFrame:
    """The catalog of a local folder (the ``local`` source); see :func:`load_catalog`."""
    return _load(root, dataset, source="local", run_dir=_run_dir(run_dir), validate=validate)


def download_kaggle(dataset: str = "ham10000") -> Path:
    """Download a dataset with kagglehub and return its folder."""
    slug = info.DATASETS[dataset]["kaggle"] if dataset in info.DATASETS else dataset
    try:
        import kagglehub

        return Path(kagglehub.dataset_download(slug))
    except Exception as err:  # noqa: BLE001 - any failure gets the same way out
        reason = (str(err).strip().splitlines() or [""])[0][:200]
        reason = f"{type(err).__name__}: {reason}" if reason else type(err).__name__
        raise DataError(f"could not download {slug} with kagglehub ({reason}): pass a local "
                        f"folder instead, e.g. --data PATH or SKINLIB_DATA=PATH") from None


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
    df, report = _build(Path(path), dataset, source="local", run_dir=None, validate=True,
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


def load_isic2019_labels(root) -> pd.DataFrame:
    """ISIC 2019 labels and metadata from its two CSVs alone (no images needed).

    Returns:
        One row per CSV row: ``image_id, lesion_id, dx, age, sex, localization, dx_type,
        dataset``; ``lesion_id`` is NaN where the CSV leaves it blank.
    """
    root = Path(root).expanduser()
    if not root.exists():
        raise DataError(f"{root} does not exist: pass the folder holding the ISIC 2019 CSVs")
    csvs, _ = _walk(root)
    report = LoadReport(str(root), "isic2019", "local")
    rows = _isic_rows(csvs, report, root)
    if rows is None:
        raise DataError(report.fatal[0]["problem"])
    rows["age"] = pd.to_numeric(rows["age"], errors="coerce")
    return rows.drop(columns=["src_line", "src_file"]).reset_index(drop=True)


# ----------------------------------------------------------------------------- loading


def _run_dir(run_dir) -> RunDir | None:
    """A RunDir from a path, a RunDir or None."""
    if run_dir is None or isinstance(run_dir, RunDir):
        return run_dir
    return RunDir(run_dir)


def _load(root, dataset: str, *, source: str, run_dir: RunDir | None,
          validate: bool) -> pd.DataFrame:
    """Build the catalog, write the run's records, raise DataError on a fatal problem."""
    root = Path(root).expanduser()
    df, report = _build(root, dataset, source=source, run_dir=run_dir, validate=validate,
                        dry_run=False)
    if run_dir is not None:
        _write_records(run_dir, report)
    fatal = report.fatal
    if fatal:
        where = f" (report: {run_dir.logs / 'catalog_report.json'})" if run_dir else ""
        raise DataError(fatal[0]["problem"] + where)
    df.attrs["classes"] = info.classes(dataset)
    df.attrs["report"] = report.as_dict(max_problems=ATTRS_MAX_PROBLEMS)
    return df


def _write_records(run_dir: RunDir, report: LoadReport) -> None:
    """Write ``logs/catalog_report.json`` and, if anything was skipped, ``logs/skipped.csv``."""
    run_dir.write_json("logs/catalog_report.json", report.as_dict())
    skipped = [p for p in report.problems if p["action"] in ("skipped", "fatal")]
    path = run_dir.logs / "skipped.csv"
    if skipped:
        pd.DataFrame(skipped, columns=["path", "problem", "action", "kind"]).to_csv(path,
                                                                                    index=False)
    elif path.exists():
        path.unlink()


def _build(root: Path, dataset: str, *, source: str, run_dir: RunDir | None, validate: bool,
           dry_run: bool) -> tuple[pd.DataFrame, LoadReport]:
    """Scan, read, match and validate; returns the catalog and the report (never raises)."""
    classes = info.classes(dataset)
    report = LoadReport(str(root.resolve()), dataset, source)
    empty = pd.DataFrame(columns=CATALOG_COLUMNS)
    if not root.is_dir():
        report.add(root, f"data folder {root} does not exist: pass a folder that holds the "
                         f"{info.DATASETS[dataset]['name']} metadata CSV and images",
                   "fatal", "missing_folder")
        return empty, report
    started = time.perf_counter()
    csvs, files = _walk(root)
    report.seconds["scan"] = round(time.perf_counter() - started, 3)
    if dataset == "isic2019":
        rows = _isic_rows(csvs, report, root)
    else:
        rows = _ham_rows(csvs, report, root)
    if rows is None and dataset == "ham10000" and not report.fatal:
        rows = _folder_rows(files, classes, report)
    if rows is None:
        if not report.fatal:
            report.add(root, _no_metadata_text(root, dataset), "fatal", "no_metadata")
        return empty, report
    in_folders = report.layout == "class_folders"
    image_index = _index_images(files, report, classes if in_folders else None)
    rows = _clean_rows(rows, classes, report)
    rows = _match_images(rows, image_index, report)
    if validate and len(rows):
        rows = _validate_rows(rows, report, run_dir, dry_run)
    report.counts["n_kept"] = len(rows)
    for dx in classes:
        if not (rows["dx"] == dx).any():
            report.add(root, f"class {dx!r} has no images in {root} (layout: {report.layout}): "
                             f"a classifier of {len(classes)} classes needs every class; add "
                             f"its images or check the metadata's dx column", "fatal",
                       "empty_class")
    rows["label"] = rows["dx"].map({dx: i for i, dx in enumerate(classes)}).astype(int)
    rows["source"] = source
    rows["dataset"] = dataset
    df = rows[CATALOG_COLUMNS].sort_values("image_id").reset_index(drop=True)
    return df, report


def _no_metadata_text(root: Path, dataset: str) -> str:
    """Error text when no metadata CSV (or class folder) was found."""
    meta = info.DATASETS[dataset]
    wanted = (meta["metadata_csv"] if dataset == "ham10000"
              else f"{meta['groundtruth_csv']} (and {meta['metadata_csv']})")
    folders = " or images in sub-folders named after the classes" if dataset == "ham10000" else ""
    return (f"no metadata CSV found under {root}: expected {wanted} (any CSV with columns "
            f"image_id, lesion_id, dx also works){folders}; pass the folder that holds it")


# ----------------------------------------------------------------------------- scanning


def _walk(root: Path) -> tuple[list[Path], list[Path]]:
    """All CSV files and image files under ``root`` (any depth), in a stable order."""
    csvs, files = [], []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            lower = name.lower()
            if lower.endswith(".csv"):
                csvs.append(Path(dirpath) / name)
            elif lower.endswith(IMAGE_SUFFIXES) and not name.startswith("."):
                files.append(Path(dirpath) / name)
    return csvs, files


def _csv_header(path: Path) -> list[str]:
    """Lower-cased column names of a CSV's first line ([] if unreadable)."""
    try:
        with open(path, newline="", encoding="utf-8-sig", errors="replace") as fh:
            first = next(csv.reader(fh), [])
    except OSError:
        return []
    return [c.strip().lower() for c in first]


def _find_metadata(csvs: list[Path], dataset: str) -> list[Path]:
    """Candidate metadata CSVs for a dataset, best first."""
    if dataset == "isic2019":
        name = info.ISIC2019["groundtruth_csv"].lower()
        needed = {"image"} | {k.lower() for k in info.ISIC2019["onehot"]}
    else:
        name = info.HAM10000["metadata_csv"].lower()
        needed = {"image_id", "lesion_id", "dx"}
    named = [p for p in csvs if p.name.lower() == name]
    by_header = [p for p in csvs if p not in named and needed <= set(_csv_header(p))]
    key = lambda p: (len(p.parts), str(p))  # noqa: E731 - shallowest first
    return sorted(named, key=key) + sorted(by_header, key=key)


def _index_images(files: list[Path], report: LoadReport, class_folders) -> dict[str, Path]:
    """``image_id -> path`` of the images to use; duplicates by image_id dropped and counted.

    ``ISIC_*`` files count; with ``class_folders`` (a class list) so does any image file in a
    folder named after a class. Segmentation masks (``*_segmentation.png``) are ignored.
    """
    class_set = set(class_folders or [])
    index: dict[str, Path] = {}
    found = dup = masks = 0
    for path in sorted(files, key=lambda p: (len(p.parts), str(p))):
        if path.stem.lower().endswith("_segmentation"):
            masks += 1
            continue
        if not (_ISIC_NAME.match(path.name) or path.parent.name.lower() in class_set):
            continue
        found += 1
        if path.stem in index:
            dup += 1
            continue
        index[path.stem] = path
    report.counts.update(n_files_found=found, n_duplicate_files=dup, n_masks_ignored=masks,
                         n_images_found=len(index))
    if dup:
        report.notes.append(f"{dup} duplicate image files (same image_id in two folders, as in "
                            f"Kaggle's lower-case copies) dropped")
    return index


# ----------------------------------------------------------------------------- metadata


def _read_csv(path: Path, report: LoadReport) -> pd.DataFrame | None:
    """A CSV as strings (BOM, CRLF, blank cells handled); None and a fatal problem if unreadable."""
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig",
                         skipinitialspace=True)
    except (OSError, ValueError, pd.errors.ParserError, UnicodeDecodeError) as err:
        first = (str(err).strip().splitlines() or [""])[0][:200]
        report.add(path, f"cannot read metadata CSV {path} ({type(err).__name__}: {first}): "
                         f"fix or replace the file", "fatal", "unreadable_metadata")
        return None
    df.columns = [str(c).strip().lower() for c in df.columns]
    for col in df.columns:
        df[col] = df[col].str.strip()
    return df


def _require(df: pd.DataFrame, path: Path, needed: list[str], report: LoadReport) -> bool:
    """Record a fatal problem naming the file and its missing columns; True if all present."""
    missing = [c for c in needed if c not in df.columns]
    if missing:
        report.add(path, f"metadata CSV {path} lacks column(s) {missing} (it has "
                         f"{list(df.columns)}): fix its header or pass the right file", "fatal",
                   "missing_columns")
    return not missing


def _ham_rows(csvs: list[Path], report: LoadReport, root: Path) -> pd.DataFrame | None:
    """Rows of the HAM10000 metadata CSV (None if there is none or it is unusable)."""
    candidates = _find_metadata(csvs, "ham10000")
    if not candidates:
        return None
    path = candidates[0]
    for other in candidates[1:]:
        report.notes.append(f"ignored another metadata CSV: {other}")
    report.metadata, report.layout = str(path), "csv"
    df = _read_csv(path, report)
    if df is None or not _require(df, path, ["image_id", "lesion_id", "dx"], report):
        return None
    out = pd.DataFrame({
        "image_id": df["image_id"], "lesion_id": df["lesion_id"], "dx": df["dx"].str.lower(),
        "age": df.get("age", ""), "sex": df.get("sex", ""),
        "localization": df.get("localization", ""), "dx_type": df.get("dx_type", ""),
    })
    out["src_line"] = np.arange(len(out)) + 2
    out["src_file"] = str(path)
    return out


def _isic_rows(csvs: list[Path], report: LoadReport, root: Path) -> pd.DataFrame | None:
    """Rows of the ISIC 2019 ground truth merged with its metadata CSV."""
    candidates = _find_metadata(csvs, "isic2019")
    if not candidates:
        report.add(root, _no_metadata_text(root, "isic2019"), "fatal", "no_metadata")
        return None
    gt_path = candidates[0]
    report.metadata, report.layout = str(gt_path), "csv"
    gt = _read_csv(gt_path, report)
    onehot = info.ISIC2019["onehot"]
    if gt is None or not _require(gt, gt_path, ["image"] + [k.lower() for k in onehot], report):
        return None
    values = gt[[k.lower() for k in onehot]].apply(pd.to_numeric, errors="coerce")
    codes = np.array(list(onehot.values()))
    one_hot_ok = values.notna().all(axis=1) & (values.sum(axis=1) == 1) & values.isin([0, 1]).all(
        axis=1)
    dx = pd.Series(codes[values.fillna(-1).to_numpy().argmax(axis=1)], index=gt.index)
    dx = dx.where(one_hot_ok, "")
    out = pd.DataFrame({"image_id": gt["image"], "dx": dx})
    out["src_line"] = np.arange(len(out)) + 2
    out["src_file"] = str(gt_path)
    meta_name = info.ISIC2019["metadata_csv"].lower()
    metas = sorted((p for p in csvs if p.name.lower() == meta_name
                    or {"image", "anatom_site_general"} <= set(_csv_header(p))),
                   key=lambda p: (p.name.lower() != meta_name, len(p.parts), str(p)))
    if metas:
        report.notes.append(f"ISIC 2019 metadata: {metas[0]}")
        meta = _read_csv(metas[0], report)
        if meta is None or not _require(meta, metas[0], ["image"], report):
            return None
        meta = meta.drop_duplicates("image").rename(columns={
            "image": "image_id", "age_approx": "age", "anatom_site_general": "localization"})
        keep = [c for c in ("image_id", "lesion_id", "age", "sex", "localization")
                if c in meta.columns]
        out = out.merge(meta[keep], on="image_id", how="left")
    else:
        report.notes.append("no ISIC 2019 metadata CSV found: lesion_id, age, sex and "
                            "localization are unknown, so each image is its own lesion")
    for col in ("lesion_id", "age", "sex", "localization"):
        if col not in out.columns:
            out[col] = ""
        out[col] = out[col].fillna("").replace("", np.nan)
    out["dx_type"] = np.nan
    out["dataset"] = "isic2019"
    return out[["image_id", "lesion_id", "dx", "age", "sex", "localization", "dx_type",
                "dataset", "src_line", "src_file"]]


def _folder_rows(files: list[Path], classes: list[str], report: LoadReport):
    """Rows from images in folders named after classes (no metadata CSV); None if none."""
    class_set = set(classes)
    rows = {}
    for path in sorted(files, key=lambda p: (len(p.parts), str(p))):
        dx = path.parent.name.lower()
        if dx in class_set and not path.stem.lower().endswith("_segmentation"):
            rows.setdefault(path.stem, (dx, str(path)))
    if not rows:
        return None
    report.layout = "class_folders"
    report.notes.append("no metadata CSV: labels come from class folder names; lesion_id = "
                        "image_id, so lesion grouping is impossible (near-duplicates of one "
                        "lesion may land in different splits)")
    report.counts["lesion_grouping_impossible"] = 1
    ids = sorted(rows)
    out = pd.DataFrame({"image_id": ids, "lesion_id": ids, "dx": [rows[i][0] for i in ids],
                        "age": "", "sex": "", "localization": "", "dx_type": ""})
    out["src_line"] = 0
    out["src_file"] = [rows[i][1] for i in ids]
    return out


def _clean_rows(rows: pd.DataFrame, classes: list[str], report: LoadReport) -> pd.DataFrame:
    """Blank ids, duplicate ids, blank lesion ids and bad ages: handled and counted."""
    report.counts["n_rows_metadata"] = len(rows)
    for col in ("image_id", "lesion_id", "dx", "sex", "localization", "dx_type"):
        rows[col] = rows[col].astype(object).where(rows[col].notna(), "")
        rows[col] = rows[col].astype(str).str.strip()
    blank = rows["image_id"] == ""
    for r in rows[blank].itertuples():
        report.add(r.src_file, f"row {r.src_line}: blank image_id (row skipped)", "skipped",
                   "blank_image_id")
    report.counts["rows_blank_image_id"] = int(blank.sum())
    rows = rows[~blank]
    dup = rows["image_id"].duplicated(keep="first")
    first_dx = rows[~dup].set_index("image_id")["dx"]
    for r in rows[dup].itertuples():
        conflict = first_dx[r.image_id] != r.dx
        text = (f"row {r.src_line}: duplicate image_id {r.image_id}"
                + (f" with a different dx ({r.dx!r} vs {first_dx[r.image_id]!r})" if conflict
                   else "") + " (first row kept)")
        report.add(r.src_file, text, "counted", "conflicting_duplicate" if conflict
                   else "duplicate_row")
    report.counts["rows_duplicate_id"] = int(dup.sum())
    rows = rows[~dup].copy()
    blank_lesion = rows["lesion_id"] == ""
    for r in rows[blank_lesion].itertuples():
        report.add(r.src_file, f"row {r.src_line}: blank lesion_id for {r.image_id} "
                            f"(image_id used as lesion_id)", "counted", "blank_lesion_id")
    rows.loc[blank_lesion, "lesion_id"] = rows.loc[blank_lesion, "image_id"]
    report.counts["n_blank_lesion_id"] = int(blank_lesion.sum())
    age_text = rows["age"].astype(object).where(rows["age"].notna(), "").astype(str).str.strip()
    age = pd.to_numeric(age_text, errors="coerce")
    bad_age = age.isna() & (age_text != "") & (age_text.str.lower() != "nan")
    for r in rows[bad_age].assign(bad_age_text=age_text[bad_age]).itertuples():
        report.add(r.src_file, f"row {r.src_line}: age {r.bad_age_text!r} of {r.image_id} is "
                               f"not a number (set to NaN)", "counted", "bad_age")
    report.counts["n_bad_age"] = int(bad_age.sum())
    rows["age"] = age.astype(float)
    for col in ("sex", "localization", "dx_type"):
        rows[col] = rows[col].replace("", np.nan)
    return rows


def _match_images(rows: pd.DataFrame, index: dict[str, Path], report: LoadReport):
    """Join rows to image files; rows without image, unknown dx and images without row counted."""
    has_image = rows["image_id"].isin(index.keys())
    for r in rows[~has_image].itertuples():
        report.add(r.src_file, f"row {r.src_line}: no image file for image_id {r.image_id} "
                            f"(row skipped)", "skipped", "no_image")
    report.counts["rows_no_image"] = int((~has_image).sum())
    rows = rows[has_image].copy()
    with_row = set(rows["image_id"])
    classes = info.classes(report.dataset)
    unknown = ~rows["dx"].isin(classes)
    for r in rows[unknown].itertuples():
        report.add(r.src_file, f"row {r.src_line}: unknown dx {r.dx!r} for {r.image_id} (row "
                            f"skipped; known: {', '.join(classes)})", "skipped", "unknown_dx")
    report.counts["rows_unknown_dx"] = int(unknown.sum())
    rows = rows[~unknown].copy()
    orphans = sorted(set(index) - with_row)
    for image_id in orphans:
        report.add(index[image_id], f"image {image_id} has no metadata row (skipped)", "skipped",
                   "no_metadata_row")
    report.counts["images_without_row"] = len(orphans)
    rows["path"] = [str(index[i].resolve()) for i in rows["image_id"]]
    return rows


# ----------------------------------------------------------------------------- validation


def _validate_rows(rows: pd.DataFrame, report: LoadReport, run_dir: RunDir | None,
                   dry_run: bool) -> pd.DataFrame:
    """Decode every image; convert or skip what is not a usable RGB JPEG; count each case."""
    started = time.perf_counter()
    cache = None if (run_dir is None or dry_run) else run_dir.logs / "validated.json"
    results = validate_files(list(rows["path"]), cache)
    report.seconds["validate"] = round(time.perf_counter() - started, 3)
    keep = np.ones(len(rows), dtype=bool)
    new_paths = list(rows["path"])
    counts = Counter()
    convert_jobs = []
    for i, (image_id, path) in enumerate(zip(rows["image_id"], rows["path"])):
        res = results[path]
        if res["status"] == "ok":
            continue
        if res["status"] == "bad":
            keep[i] = False
            counts["rows_unreadable"] += 1
            report.add(path, f"{res['problem']} (skipped)", "skipped", "unreadable_image")
        elif dry_run:
            counts["n_converted"] += 1
            counts["n_downscaled"] += res["status"] == "huge"
            report.add(path, f"{res['problem']} (will be converted)", "converted",
                       "needs_conversion")
        elif run_dir is None:
            keep[i] = False
            counts["rows_needs_conversion"] += 1
            report.add(path, f"{res['problem']}; skipped: pass a run folder (run_dir) so it can "
                             f"be converted into <run_dir>/converted/", "skipped",
                       "needs_conversion")
        else:
            convert_jobs.append((i, image_id, path, res))
    if convert_jobs:
        started = time.perf_counter()
        out_dir = run_dir.inside("converted")
        small = [j for j in convert_jobs if j[3]["status"] == "convert"]
        with ThreadPoolExecutor(max_workers=_workers()) as pool:
            done = list(pool.map(lambda j: _try_convert(j[2], out_dir / f"{j[1]}.jpg", False),
                                 small))
        done += [_try_convert(j[2], out_dir / f"{j[1]}.jpg", True)
                 for j in convert_jobs if j[3]["status"] == "huge"]
        jobs = small + [j for j in convert_jobs if j[3]["status"] == "huge"]
        for (i, _, path, res), (dst, error) in zip(jobs, done):
            if error:
                keep[i] = False
                counts["rows_unreadable"] += 1
                report.add(path, f"conversion failed ({error}) (skipped)", "skipped",
                           "unreadable_image")
                continue
            new_paths[i] = str(dst)
            counts["n_converted"] += 1
            counts["n_downscaled"] += res["status"] == "huge"
            report.add(path, f"{res['problem']}: converted to {dst}", "converted",
                       "needs_conversion")
        report.seconds["convert"] = round(time.perf_counter() - started, 3)
    for key in ("rows_unreadable", "rows_needs_conversion", "n_converted", "n_downscaled"):
        report.counts[key] = counts[key]
    rows = rows.assign(path=new_paths)
    return rows[keep].copy()


def _try_convert(src, dst, huge: bool):
    """``(dst, None)`` after converting, or ``(None, reason)``."""
    try:
        return images.convert_image(src, dst, huge=huge), None
    except Exception as err:  # noqa: BLE001 - the file is reported, loading goes on
        return None, f"{type(err).__name__}: {err}"


def _workers() -> int:
    """Threads for decoding (Pillow releases the GIL while decoding)."""
    return max(2, min(16, 2 * (os.cpu_count() or 1)))


def validate_files(paths: list[str], cache_file: Path | None = None) -> dict[str, dict]:
    """:func:`skinlib.images.inspect_image` of each path, in threads, cached by (size, mtime).

    With ``cache_file``, results of files whose size and mtime are unchanged are read from it,
    and the merged results are written back.
    """
    cache = {}
    if cache_file is not None and cache_file.exists():
        try:
            cache = json.loads(cache_file.read_text())
        except (OSError, ValueError):
            cache = {}
    results, todo, stats = {}, [], {}
    for path in paths:
        try:
            st = os.stat(path)
            stats[path] = [st.st_size, st.st_mtime_ns]
        except OSError:
            stats[path] = None
        entry = cache.get(path)
        if entry and stats[path] is not None and entry[:2] == stats[path]:
            results[path] = entry[2]
        else:
            todo.append(path)
    if todo:
        with ThreadPoolExecutor(max_workers=_workers()) as pool:
            for path, res in zip(todo, pool.map(images.inspect_image, todo)):
                results[path] = res
    if cache_file is not None and todo:
        cache.update({p: [*stats[p], results[p]] for p in todo if stats[p] is not None})
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_name(cache_file.name + ".tmp")
        tmp.write_text(json.dumps(cache))
        os.replace(tmp, cache_file)
    return results


# ----------------------------------------------------------------------------- synthetic

_LOCALIZATIONS = ["back", "lower extremity", "trunk", "upper extremity", "abdomen", "face",
                  "chest", "foot", "neck", "scalp", "hand", "ear", "genital", "acral", "unknown"]
_DX_TYPES = ["histo", "follow_up", "consensus", "confocal"]


def _synthetic_counts(n_images: int, n_classes: int, major: int) -> list[int]:
    """Images per class: one class about 55%, the rest shared unevenly, each at least ~15."""
    floor = max(1, min(15, n_images // (2 * n_classes)))
    minor_share = np.linspace(1.6, 0.8, n_classes - 1)
    minor_share = 0.45 * minor_share / minor_share.sum()
    counts = [0] * n_classes
    minors = [i for i in range(n_classes) if i != major]
    for i, share in zip(minors, minor_share):
        counts[i] = max(floor, int(round(share * n_images)))
    counts[major] = n_images - sum(counts)
    if counts[major] < floor:
        raise ValueError(f"n_images={n_images} is too small for {n_classes} classes: use at "
                         f"least {n_classes * 4}")
    return counts


def _synthetic_image(rng: np.random.Generator, cls: int, n_classes: int, lesion: dict):
    """One 200x150 RGB uint8 picture: a class-coloured, class-shaped blob on skin + noise."""
    h, w = 150, 200
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    skin = np.array([214, 168, 150], np.float32) + rng.normal(0, 6, 3)
    img = np.broadcast_to(skin, (h, w, 3)).copy()
    cy = lesion["cy"] + rng.normal(0, 3)
    cx = lesion["cx"] + rng.normal(0, 3)
    angle = lesion["angle"] + rng.normal(0, 0.2)
    dy, dx = yy - cy, xx - cx
    u = dx * np.cos(angle) + dy * np.sin(angle)
    v = -dx * np.sin(angle) + dy * np.cos(angle)
    radius = lesion["radius"] * (1 + rng.normal(0, 0.05))
    aspect = 1.0 + 0.9 * (cls % 3) / 2  # round, oval, elongated
    r = np.sqrt((u / radius) ** 2 + (v * aspect / radius) ** 2)
    if cls % 2:  # irregular border for every other class
        theta = np.arctan2(v, u)
        r = r * (1 + 0.18 * np.sin(lesion["lobes"] * theta + lesion["phase"]))
    mask = np.clip((1.15 - r) / 0.3, 0, 1)[..., None]
    texture_kind = cls % 4
    if texture_kind == 1:  # rings
        texture = 0.5 + 0.5 * np.sin(r * 14)
    elif texture_kind == 2:  # dots
        texture = 0.5 + 0.5 * np.sin(xx * 0.7) * np.sin(yy * 0.7)
    elif texture_kind == 3:  # dark core
        texture = np.clip(1.2 - r, 0, 1)
    else:
        texture = np.full_like(r, 0.5)
    colour = lesion["colour"] * (0.75 + 0.5 * texture[..., None])
    img = img * (1 - mask) + colour * mask
    img += rng.normal(0, 10, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _class_colour(cls: int, n_classes: int) -> np.ndarray:
    """A distinct dark RGB colour per class index (hues spread around the colour wheel)."""
    hue = cls / n_classes
    value = 0.35 + 0.35 * ((cls * 3) % n_classes) / n_classes
    return np.array(colorsys.hsv_to_rgb(hue, 0.75, value), np.float32) * 255


def make_synthetic(root, n_images: int = 420, seed: int = 42) -> Path:
    """Write a tiny HAM10000 look-alike in the Kaggle layout under ``root``; return ``root``.

    ``HAM10000_metadata.csv`` plus ``HAM10000_images_part_1/2/ISIC_*.jpg`` (200x150 RGB), all
    classes with HAM's skew (the most frequent class about 55%), about 1.35 images per lesion,
    and class-dependent colour, shape and texture so a small CNN learns it quickly. The same
    seed gives the same bytes; a complete set for the same ``(n_images, seed)`` is reused.
    """
    from PIL import Image

    root = Path(root).expanduser()
    marker = root / SYNTHETIC_MARKER
    wanted = {"n_images": int(n_images), "seed": int(seed), "version": SYNTHETIC_VERSION}
    if marker.exists():
        try:
            same = json.loads(marker.read_text()) == wanted
        except (OSError, ValueError):
            same = False
        n_found = sum(len(list((root / f"HAM10000_images_part_{k}").glob("ISIC_*.jpg")))
                      for k in (1, 2))
        if same and n_found == n_images and (root / info.HAM10000["metadata_csv"]).exists():
            return root
        marker.unlink()
        for k in (1, 2):  # an older synthetic set of ours: replace it
            shutil.rmtree(root / f"HAM10000_images_part_{k}", ignore_errors=True)
    elif (root / info.HAM10000["metadata_csv"]).exists() or any(root.glob("*/ISIC_*")):
        raise DataError(f"{root} already holds data that make_synthetic did not write (no "
                        f"{SYNTHETIC_MARKER}): pass an empty or new folder")
    classes = info.classes("ham10000")
    major = classes.index("nv") if "nv" in classes else 0
    counts = _synthetic_counts(int(n_images), len(classes), major)
    rng = np.random.default_rng(seed)
    image_numbers = 24306 + rng.permutation(int(n_images))
    records, images_out = [], []
    lesion_no = 0
    for cls, count in enumerate(counts):
        made = 0
        while made < count:
            size = min(int(rng.choice([1, 2, 3], p=[0.72, 0.21, 0.07])), count - made)
            lesion = {"cy": rng.uniform(55, 95), "cx": rng.uniform(75, 125),
                      "angle": rng.uniform(0, np.pi), "lobes": int(rng.integers(3, 7)),
                      "phase": rng.uniform(0, 2 * np.pi),
                      "radius": (22 + 5 * (cls % 4)) * rng.uniform(0.85, 1.15),
                      "colour": _class_colour(cls, len(classes)) * rng.uniform(0.9, 1.1, 3)}
            lesion_id = f"HAM_{lesion_no:07d}"
            age = "" if rng.random() < 0.01 else f"{float(rng.integers(1, 18) * 5):.1f}"
            sex = str(rng.choice(["male", "female"], p=[0.54, 0.46]))
            loc = str(rng.choice(_LOCALIZATIONS))
            dx_type = str(rng.choice(_DX_TYPES, p=[0.53, 0.37, 0.09, 0.01]))
            for _ in range(size):
                image_id = f"ISIC_{int(image_numbers[len(images_out)]):07d}"
                pixels = _synthetic_image(rng, cls, len(classes), lesion)
                images_out.append((image_id, pixels))
                records.append([lesion_id, image_id, classes[cls], dx_type, age, sex, loc])
            made += size
            lesion_no += 1
    root.mkdir(parents=True, exist_ok=True)
    half = sorted(i for i, _ in images_out)[len(images_out) // 2]
    for image_id, pixels in images_out:
        part = 1 if image_id < half else 2
        folder = root / f"HAM10000_images_part_{part}"
        folder.mkdir(exist_ok=True)
        Image.fromarray(pixels, "RGB").save(folder / f"{image_id}.jpg", "JPEG", quality=90)
    with open(root / info.HAM10000["metadata_csv"], "w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["lesion_id", "image_id", "dx", "dx_type", "age", "sex", "localization"])
        writer.writerows(records)
    marker.write_text(json.dumps(wanted) + "\n")
    return root
