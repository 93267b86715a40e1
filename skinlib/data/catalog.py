"""Finding and loading a dataset into one catalog DataFrame: the sources and the folder scan.

Sources: ``local`` (any folder, searched recursively for the metadata CSV and ``ISIC_*`` image
files), ``kaggle`` (kagglehub download, then read as a local folder) and ``synthetic`` (the fake
HAM10000 look-alike of :mod:`skinlib.data.fake_data`, written on the fly; the keyword is kept
for the command line). Every image a catalog points at is an RGB JPEG that decodes in full;
anything else is converted, or skipped and counted, and the report says which and why (see
DESIGN.md, "Bad input").
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pandas as pd

from skinlib import info
from skinlib.data import readers
from skinlib.data.fake_data import make_fake_dataset
from skinlib.data.report import ATTRS_MAX_PROBLEMS, DataError, LoadReport, write_records
from skinlib.data.validation import validate_rows
from skinlib.rundir import RunDir, default_run_dir, project_root

CATALOG_COLUMNS = ["image_id", "lesion_id", "dx", "label", "path", "age", "sex", "localization",
                   "dx_type", "source_site", "source", "dataset"]
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
FAKE_FOLDER = "fake_data"  # where the ``synthetic`` source writes the fake dataset in a run
_ISIC_NAME = re.compile(r"^isic_.*\.(jpe?g|png)$", re.IGNORECASE)


def load_catalog(data="auto", *, dataset: str = "ham10000", run_dir=None, profile=None,
                 validate: bool = True) -> pd.DataFrame:
    """The catalog of a dataset from ``auto`` | ``synthetic`` | ``kaggle`` | a folder path.

    ``auto`` uses ``$SKINLIB_DATA`` if set, else ``<project root>/data`` if it holds a metadata
    CSV, else kagglehub. ``synthetic`` writes the fake dataset
    (``make_fake_dataset(<run_dir>/fake_data, ...)``) with the profile's ``fake_images``
    (420 if unset) and seed.

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
        local = local_folder(dataset)
        if local is not None:
            return load_local(local, dataset=dataset, run_dir=run_dir, validate=validate)
        data = "kaggle"
    if isinstance(data, str) and data == "synthetic":
        return _load_fake(dataset, run_dir, profile, validate)
    if isinstance(data, str) and data == "kaggle":
        root = download_kaggle(dataset)
        return _load(root, dataset, source="kaggle", run_dir=_run_dir(run_dir), validate=validate)
    return load_local(data, dataset=dataset, run_dir=run_dir, validate=validate)


def local_folder(dataset: str = "ham10000") -> Path | None:
    """``<project root>/data`` if it holds the dataset's metadata CSV (what ``auto`` uses)."""
    local = project_root() / "data"
    if local.is_dir() and readers.find_metadata(walk(local)[0], dataset):
        return local
    return None


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


def load_isic2019_labels(root) -> pd.DataFrame:
    """ISIC 2019 labels and metadata from its two CSVs alone (no images needed).

    Returns:
        One row per CSV row: ``image_id, lesion_id, dx, age, sex, localization, dx_type,
        dataset``; ``lesion_id`` is NaN where the CSV leaves it blank.
    """
    root = Path(root).expanduser()
    if not root.exists():
        raise DataError(f"{root} does not exist: pass the folder holding the ISIC 2019 CSVs")
    csvs, _ = walk(root)
    report = LoadReport(str(root), "isic2019", "local")
    rows = readers.isic_rows(csvs, report, root)
    if rows is None:
        raise DataError(report.fatal[0]["problem"])
    rows["age"] = pd.to_numeric(rows["age"], errors="coerce")
    return rows.drop(columns=["source_site", "src_line", "src_file"]).reset_index(drop=True)


# ----------------------------------------------------------------------------- loading


def _run_dir(run_dir) -> RunDir | None:
    """A RunDir from a path, a RunDir or None."""
    if run_dir is None or isinstance(run_dir, RunDir):
        return run_dir
    return RunDir(run_dir)


def _load_fake(dataset: str, run_dir, profile, validate: bool) -> pd.DataFrame:
    """The catalog of the fake dataset written into the run folder (the ``synthetic`` source)."""
    if dataset != "ham10000":
        raise DataError(f"the synthetic source (a fake look-alike dataset) only imitates "
                        f"HAM10000, not {dataset!r}: use dataset='ham10000' or pass a folder "
                        f"of {dataset} data")
    seed = getattr(profile, "seed", 42)
    n_images = getattr(profile, "fake_images", 0) or 420
    rd = _run_dir(run_dir) or RunDir(default_run_dir(getattr(profile, "name", "smoke")))
    root = make_fake_dataset(rd.root / FAKE_FOLDER, n_images=n_images, seed=seed)
    return _load(root, dataset, source="synthetic", run_dir=rd, validate=validate)


def _load(root, dataset: str, *, source: str, run_dir: RunDir | None,
          validate: bool) -> pd.DataFrame:
    """Build the catalog, write the run's records, raise DataError on a fatal problem."""
    root = Path(root).expanduser()
    df, report = build(root, dataset, source=source, run_dir=run_dir, validate=validate,
                       dry_run=False)
    if run_dir is not None:
        write_records(run_dir, report)
    fatal = report.fatal
    if fatal:
        where = f" (report: {run_dir.logs / 'catalog_report.json'})" if run_dir else ""
        raise DataError(fatal[0]["problem"] + where)
    df.attrs["classes"] = info.classes(dataset)
    df.attrs["report"] = report.as_dict(max_problems=ATTRS_MAX_PROBLEMS)
    return df


def build(root: Path, dataset: str, *, source: str, run_dir: RunDir | None, validate: bool,
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
    csvs, files = walk(root)
    report.seconds["scan"] = round(time.perf_counter() - started, 3)
    if dataset == "isic2019":
        rows = readers.isic_rows(csvs, report, root)
    else:
        rows = readers.ham_rows(csvs, report)
    if rows is None and dataset == "ham10000" and not report.fatal:
        rows = readers.folder_rows(files, classes, report)
    if rows is None:
        if not report.fatal:
            report.add(root, readers.no_metadata_text(root, dataset), "fatal", "no_metadata")
        return empty, report
    in_folders = report.layout == "class_folders"
    image_index = _index_images(files, report, classes if in_folders else None)
    rows = _match_images(readers.clean_rows(rows, report), image_index, report)
    if validate and len(rows):
        rows = validate_rows(rows, report, run_dir, dry_run)
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


# ----------------------------------------------------------------------------- scanning


def walk(root: Path) -> tuple[list[Path], list[Path]]:
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
