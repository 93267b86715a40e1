"""Readers of the metadata layouts (HAM10000, ISIC 2019, class folders) and row cleaning.

Each reader returns one row per metadata row, with the catalog's metadata columns plus
``src_line`` and ``src_file`` (where a problem is reported), or None when its layout is absent.
HAM10000 metadata comes in two public forms: Kaggle's seven columns, and the later Harvard
Dataverse form with an eighth column ``dataset`` (the image's source), read as ``source_site``.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from skinlib import info

if TYPE_CHECKING:
    from skinlib.data.report import LoadReport

_READ_ERRORS = (OSError, ValueError, pd.errors.ParserError, UnicodeDecodeError)
_SITE_HEADER = {"image_id", "lesion_id", "dx", "dataset"}  # the Dataverse form's key columns
_ROW_COLUMNS = ["image_id", "lesion_id", "dx", "age", "sex", "localization", "dx_type",
                "source_site"]


def _csv_header(path: Path) -> list[str]:
    """Lower-cased column names of a CSV's first line ([] if unreadable)."""
    try:
        with open(path, newline="", encoding="utf-8-sig", errors="replace") as fh:
            first = next(csv.reader(fh), [])
    except OSError:
        return []
    return [c.strip().lower() for c in first]


def find_metadata(csvs: list[Path], dataset: str) -> list[Path]:
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


def no_metadata_text(root: Path, dataset: str) -> str:
    """Error text when no metadata CSV (or class folder) was found."""
    meta = info.DATASETS[dataset]
    wanted = (meta["metadata_csv"] if dataset == "ham10000"
              else f"{meta['groundtruth_csv']} (and {meta['metadata_csv']})")
    folders = " or images in sub-folders named after the classes" if dataset == "ham10000" else ""
    return (f"no metadata CSV found under {root}: expected {wanted} (any CSV with columns "
            f"image_id, lesion_id, dx also works){folders}; pass the folder that holds it")


def _read_table(path: Path) -> pd.DataFrame:
    """A CSV as stripped strings with lower-case column names (BOM, CRLF, blank cells handled)."""
    df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig",
                     skipinitialspace=True)
    df.columns = [str(c).strip().lower() for c in df.columns]
    for col in df.columns:
        df[col] = df[col].str.strip()
    return df


def _error_text(err: Exception) -> str:
    """``Type: first line`` of an exception, at most 200 characters of its message."""
    return f"{type(err).__name__}: {(str(err).strip().splitlines() or [''])[0][:200]}"


def _read_csv(path: Path, report: LoadReport) -> pd.DataFrame | None:
    """:func:`_read_table`, or None and a fatal problem naming the file if it is unreadable."""
    try:
        return _read_table(path)
    except _READ_ERRORS as err:
        report.add(path, f"cannot read metadata CSV {path} ({_error_text(err)}): fix or replace "
                         f"the file", "fatal", "unreadable_metadata")
        return None


def _require(df: pd.DataFrame, path: Path, needed: list[str], report: LoadReport) -> bool:
    """Record a fatal problem naming the file and its missing columns; True if all present."""
    missing = [c for c in needed if c not in df.columns]
    if missing:
        report.add(path, f"metadata CSV {path} lacks column(s) {missing} (it has "
                         f"{list(df.columns)}): fix its header or pass the right file", "fatal",
                   "missing_columns")
    return not missing


def _with_lines(rows: pd.DataFrame, path: Path) -> pd.DataFrame:
    """``rows`` with ``src_line`` (the CSV line of each row) and ``src_file`` added."""
    rows["src_line"] = np.arange(len(rows)) + 2
    rows["src_file"] = str(path)
    return rows


def ham_rows(csvs: list[Path], report: LoadReport) -> pd.DataFrame | None:
    """Rows of the HAM10000 metadata CSV (None if there is none or it is unusable).

    ``source_site`` is the file's ``dataset`` column (Dataverse form); if the chosen file has
    none (Kaggle form) but another candidate has, that column is joined in by ``image_id``.
    """
    candidates = find_metadata(csvs, "ham10000")
    if not candidates:
        return None
    path = candidates[0]
    report.metadata, report.layout = str(path), "csv"
    df = _read_csv(path, report)
    if df is None or not _require(df, path, ["image_id", "lesion_id", "dx"], report):
        return None
    sites = None if "dataset" in df.columns else next(
        (p for p in candidates[1:] if _SITE_HEADER <= set(_csv_header(p))), None)
    for other in candidates[1:]:
        if other != sites:
            report.notes.append(f"ignored another metadata CSV: {other}")
    out = _with_lines(pd.DataFrame({
        "image_id": df["image_id"], "lesion_id": df["lesion_id"], "dx": df["dx"].str.lower(),
        "age": df.get("age", ""), "sex": df.get("sex", ""),
        "localization": df.get("localization", ""), "dx_type": df.get("dx_type", ""),
        "source_site": df.get("dataset", ""),
    }), path)
    return out if sites is None else _join_source_sites(out, sites, report)


def _join_source_sites(rows: pd.DataFrame, path: Path, report: LoadReport) -> pd.DataFrame:
    """``source_site`` from another metadata CSV's ``dataset`` column, joined by image_id.

    The rows' own values win; an image whose lesion_id or dx differs in ``path`` is counted
    (``n_metadata_disagreements``), one without a row there has an empty ``source_site``.
    """
    try:
        other = _read_table(path).drop_duplicates("image_id").set_index("image_id")
    except _READ_ERRORS as err:
        report.notes.append(f"could not read {path} for source_site ({_error_text(err)}): "
                            f"source_site left empty")
        return rows
    known = rows["image_id"].isin(other.index)
    theirs = other.reindex(rows["image_id"]).fillna("")
    their_dx = theirs["dx"].str.lower().to_numpy()
    differ = known & ((rows["lesion_id"].to_numpy() != theirs["lesion_id"].to_numpy())
                      | (rows["dx"].to_numpy() != their_dx))
    for r, lesion, dx in zip(rows[differ].itertuples(), theirs["lesion_id"][differ.to_numpy()],
                             their_dx[differ.to_numpy()]):
        report.add(r.src_file, f"row {r.src_line}: {r.image_id} has lesion_id {r.lesion_id!r}, "
                               f"dx {r.dx!r} here but {lesion!r}, {dx!r} in {path} (values of "
                               f"this file kept)", "counted", "metadata_disagreement")
    report.counts["n_metadata_disagreements"] = int(differ.sum())
    report.counts["n_without_source_site"] = int((~known).sum())
    report.notes.append(f"source_site from the dataset column of {path}, joined by image_id: "
                        f"{int(known.sum())} of {len(rows)} rows found, {int(differ.sum())} "
                        f"disagree on lesion_id or dx")
    return rows.assign(source_site=theirs["dataset"].to_numpy())


def isic_rows(csvs: list[Path], report: LoadReport, root: Path) -> pd.DataFrame | None:
    """Rows of the ISIC 2019 ground truth merged with its metadata CSV."""
    candidates = find_metadata(csvs, "isic2019")
    if not candidates:
        report.add(root, no_metadata_text(root, "isic2019"), "fatal", "no_metadata")
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
    out = _with_lines(pd.DataFrame({"image_id": gt["image"], "dx": dx.where(one_hot_ok, "")}),
                       gt_path)
    out = _isic_metadata(out, csvs, report)
    if out is None:
        return None
    for col in ("lesion_id", "age", "sex", "localization"):
        if col not in out.columns:
            out[col] = ""
        out[col] = out[col].fillna("").replace("", np.nan)
    out["dx_type"] = np.nan
    out["dataset"] = "isic2019"
    out["source_site"] = ""
    return out[_ROW_COLUMNS + ["dataset", "src_line", "src_file"]]


def _isic_metadata(out: pd.DataFrame, csvs: list[Path], report: LoadReport):
    """ISIC 2019 ground-truth rows with the metadata CSV's columns merged in (None if unusable)."""
    meta_name = info.ISIC2019["metadata_csv"].lower()
    metas = sorted((p for p in csvs if p.name.lower() == meta_name
                    or {"image", "anatom_site_general"} <= set(_csv_header(p))),
                   key=lambda p: (p.name.lower() != meta_name, len(p.parts), str(p)))
    if not metas:
        report.notes.append("no ISIC 2019 metadata CSV found: lesion_id, age, sex and "
                            "localization are unknown, so each image is its own lesion")
        return out
    report.notes.append(f"ISIC 2019 metadata: {metas[0]}")
    meta = _read_csv(metas[0], report)
    if meta is None or not _require(meta, metas[0], ["image"], report):
        return None
    meta = meta.drop_duplicates("image").rename(columns={
        "image": "image_id", "age_approx": "age", "anatom_site_general": "localization"})
    keep = [c for c in ("image_id", "lesion_id", "age", "sex", "localization")
            if c in meta.columns]
    return out.merge(meta[keep], on="image_id", how="left")


def folder_rows(files: list[Path], classes: list[str], report: LoadReport):
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
                        "age": "", "sex": "", "localization": "", "dx_type": "",
                        "source_site": ""})
    out["src_line"] = 0
    out["src_file"] = [rows[i][1] for i in ids]
    return out


def clean_rows(rows: pd.DataFrame, report: LoadReport) -> pd.DataFrame:
    """Blank ids, duplicate ids, blank lesion ids and bad ages: handled and counted."""
    report.counts["n_rows_metadata"] = len(rows)
    for col in ("image_id", "lesion_id", "dx", "sex", "localization", "dx_type", "source_site"):
        rows[col] = rows[col].astype(object).where(rows[col].notna(), "")
        rows[col] = rows[col].astype(str).str.strip()
    blank = rows["image_id"] == ""
    for r in rows[blank].itertuples():
        report.add(r.src_file, f"row {r.src_line}: blank image_id (row skipped)", "skipped",
                   "blank_image_id")
    report.counts["rows_blank_image_id"] = int(blank.sum())
    rows = _drop_duplicate_ids(rows[~blank], report)
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


def _drop_duplicate_ids(rows: pd.DataFrame, report: LoadReport) -> pd.DataFrame:
    """The first row of each image_id; later ones counted (``conflicting`` if dx differs)."""
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
    return rows[~dup].copy()
