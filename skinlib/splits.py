"""Lesion-grouped, class-stratified train/val/test splits and K folds.

HAM10000 has 10,015 images of 7,470 lesions; images of one lesion are near-duplicates, so
every split here is made over lesions: no ``lesion_id`` is ever on two sides. The split is
saved as ``splits.csv`` in the run folder and re-used by every later notebook.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

SPLIT_COLUMNS = ["image_id", "lesion_id", "dx", "split", "fold"]


class SplitError(ValueError):
    """A split that would break the rules (leakage, mismatch with the catalog)."""


def _allocate(sizes: np.ndarray, targets: list[float], rng: np.random.Generator) -> np.ndarray:
    """Assign groups (with ``sizes`` images each) to bins so image counts track ``targets``.

    Groups are visited in random order; each goes to the bin furthest below its target share.
    """
    order = rng.permutation(len(sizes))
    total = float(sizes.sum())
    filled = np.zeros(len(targets))
    out = np.empty(len(sizes), dtype=int)
    goal = np.asarray(targets, dtype=float) * total
    for i in order:
        deficit = (goal - filled) / np.maximum(goal, 1e-9)
        b = int(np.argmax(deficit))
        out[i] = b
        filled[b] += sizes[i]
    return out


def make_splits(catalog: pd.DataFrame, *, val_frac: float = 0.15, test_frac: float = 0.15,
                k_folds: int = 5, seed: int = 42, group: bool = True) -> pd.DataFrame:
    """Split a catalog into train/val/test and K folds of train+val.

    Args:
        catalog: one row per image with ``image_id``, ``lesion_id`` and ``dx``.
        val_frac, test_frac: shares of images per class in validation and test.
        k_folds: folds over train+val (``fold`` is -1 for test images).
        seed: the same seed gives the same split.
        group: ``True`` (the only honest choice) keeps each lesion on one side; ``False``
            splits by image, which leaks lesions — only for the leakage demonstration.

    Returns:
        A DataFrame with ``SPLIT_COLUMNS``, sorted by ``image_id``.
    """
    if not 0 < val_frac < 1 or not 0 < test_frac < 1 or val_frac + test_frac >= 1:
        raise SplitError(f"val_frac={val_frac} and test_frac={test_frac} must be in (0, 1) "
                         "and sum to less than 1")
    if k_folds < 2:
        raise SplitError(f"k_folds={k_folds}: need at least 2 folds")
    missing = {"image_id", "lesion_id", "dx"} - set(catalog.columns)
    if missing:
        raise SplitError(f"catalog lacks column(s) {sorted(missing)}")
    df = catalog[["image_id", "lesion_id", "dx"]].copy()
    df["group"] = df["lesion_id"] if group else df["image_id"]
    # A group's class is its most frequent dx (in HAM10000 every lesion has one dx).
    gdx = df.groupby("group")["dx"].agg(lambda s: s.value_counts().index[0])
    gsize = df.groupby("group").size()
    rng = np.random.default_rng(seed)
    split_of: dict = {}
    fold_of: dict = {}
    names = np.array(["train", "val", "test"])
    for dx in sorted(gdx.unique()):
        groups = np.array(sorted(gdx.index[gdx == dx]))
        sizes = gsize.loc[groups].to_numpy()
        bins = _allocate(sizes, [1 - val_frac - test_frac, val_frac, test_frac], rng)
        split_of.update(zip(groups, names[bins]))
        trval = groups[bins < 2]
        folds = _allocate(gsize.loc[trval].to_numpy(), [1 / k_folds] * k_folds, rng)
        fold_of.update(zip(trval, folds))
    df["split"] = df["group"].map(split_of)
    df["fold"] = df["group"].map(fold_of).fillna(-1).astype(int)
    out = df[SPLIT_COLUMNS].sort_values("image_id").reset_index(drop=True)
    if group:
        assert_lesion_disjoint(out)
    return out


def assert_lesion_disjoint(splits: pd.DataFrame) -> None:
    """Raise :class:`SplitError` if any ``lesion_id`` sits in two splits or two folds."""
    for col in ("split", "fold"):
        part = splits if col == "split" else splits[splits["fold"] >= 0]
        n = part.groupby("lesion_id")[col].nunique()
        bad = n[n > 1]
        if len(bad):
            raise SplitError(f"{len(bad)} lesion(s) cross {col}s, e.g. {list(bad.index[:3])}: "
                             "images of one lesion must stay together")


def save_splits(splits: pd.DataFrame, path: str | Path) -> Path:
    """Write the split CSV (byte-identical for the same split)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    splits[SPLIT_COLUMNS].to_csv(path, index=False, lineterminator="\n")
    return path


def load_or_make_splits(catalog: pd.DataFrame, path: str | Path, **kwargs) -> pd.DataFrame:
    """Re-use ``path`` if it matches the catalog, else make the split and save it there.

    Raises:
        SplitError: the saved split names other images than the catalog (a run folder made
            on other data); use another run folder or delete the file.
    """
    path = Path(path)
    if path.exists():
        saved = pd.read_csv(path, dtype={"image_id": str, "lesion_id": str, "dx": str})
        if set(saved["image_id"]) != set(catalog["image_id"]):
            only_saved = len(set(saved["image_id"]) - set(catalog["image_id"]))
            only_cat = len(set(catalog["image_id"]) - set(saved["image_id"]))
            raise SplitError(
                f"{path} was made for other data ({only_saved} of its images are not in this "
                f"catalog, {only_cat} catalog images are not in it): use another run folder or "
                "delete the file to make a new split")
        assert_lesion_disjoint(saved)
        return saved
    splits = make_splits(catalog, **kwargs)
    save_splits(splits, path)
    return splits


def attach(catalog: pd.DataFrame, splits: pd.DataFrame) -> pd.DataFrame:
    """The catalog with ``split`` and ``fold`` columns joined on ``image_id``."""
    out = catalog.merge(splits[["image_id", "split", "fold"]], on="image_id", how="left",
                        validate="one_to_one")
    if out["split"].isna().any():
        missing = out.loc[out["split"].isna(), "image_id"].head(3).tolist()
        raise SplitError(f"images without a split, e.g. {missing}")
    out.attrs = dict(catalog.attrs)
    return out


def class_shares(splits: pd.DataFrame) -> pd.DataFrame:
    """Share of each dx within each split (rows dx, columns splits plus ``all``)."""
    table = pd.crosstab(splits["dx"], splits["split"], normalize="columns")
    table["all"] = splits["dx"].value_counts(normalize=True)
    return table
