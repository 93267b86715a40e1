"""Lesion-grouped, class-stratified train/val/test splits and K folds.

HAM10000 has 10,015 images of 7,470 lesions; images of one lesion are near-duplicates, so
every split here is made over lesions: no ``lesion_id`` is ever on two sides. The test and
validation splits are drawn first, from their own random stream, then the K folds within
train+val from another: the number of folds never changes the test split. The split is saved
as ``splits.csv`` in the run folder, with its key (catalog hash, seed, fractions, K) in
``splits.json``, and re-used by every later notebook only when the key matches.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

SPLIT_COLUMNS = ["image_id", "lesion_id", "dx", "split", "fold"]
SPLIT_KEY_FILE = "splits.json"
# 2: test/val drawn before the folds, from independent streams (1: one stream, K moved the test)
SPLIT_ALGORITHM = 2


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
    """Split a catalog into train/val/test, then K folds of train+val.

    Args:
        catalog: one row per image with ``image_id``, ``lesion_id`` and ``dx``.
        val_frac, test_frac: shares of images per class in validation and test.
        k_folds: folds over train+val (``fold`` is -1 for test images); drawn after the test
            and validation splits, from an independent random stream, so K never moves them.
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
    split_rng, fold_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    names = np.array(["train", "val", "test"])
    by_class = [np.array(sorted(gdx.index[gdx == dx])) for dx in sorted(gdx.unique())]
    split_of: dict = {}
    for groups in by_class:
        bins = _allocate(gsize.loc[groups].to_numpy(),
                         [1 - val_frac - test_frac, val_frac, test_frac], split_rng)
        split_of.update(zip(groups, names[bins]))
    fold_of: dict = {}
    for groups in by_class:
        trval = np.array([g for g in groups if split_of[g] != "test"])
        fold_of.update(zip(trval, _allocate(gsize.loc[trval].to_numpy(), [1 / k_folds] * k_folds,
                                            fold_rng)))
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


def catalog_hash(catalog: pd.DataFrame) -> str:
    """SHA-256 of the catalog's identity columns (image, lesion, label), order-independent."""
    cols = [c for c in ("image_id", "lesion_id", "dx") if c in catalog.columns]
    text = catalog[cols].sort_values("image_id").to_csv(index=False)
    return hashlib.sha256(text.encode()).hexdigest()


def split_key(catalog: pd.DataFrame, *, val_frac: float = 0.15, test_frac: float = 0.15,
              k_folds: int = 5, seed: int = 42) -> dict:
    """What makes a split: the catalog's hash, seed, fractions, K and the split algorithm."""
    return {"catalog_sha256": catalog_hash(catalog), "seed": int(seed),
            "val_frac": float(val_frac), "test_frac": float(test_frac),
            "k_folds": int(k_folds), "algorithm": SPLIT_ALGORITHM}


def _mismatch(path: Path, saved: dict | None, key: dict) -> str:
    """Why a saved split is not the split asked for, and the way out."""
    way_out = (f"use another run folder (--out DIR, or run_dir=... in the notebook) or delete "
               f"{path} and {path.with_name(SPLIT_KEY_FILE)} to make the split asked for (models "
               "trained on the old split in that folder must then be retrained: --force)")
    if saved is None:
        return (f"{path} has no key file {SPLIT_KEY_FILE}: it was made by an older skinlib, "
                f"whose test split depended on k_folds, so it may not be the split asked for; "
                + way_out)
    if saved.get("catalog_sha256") != key["catalog_sha256"]:
        return f"{path} was made for other data (the catalog's images, lesions or labels differ); " \
               + way_out
    diff = ", ".join(f"{k}={saved.get(k)!r} there but {v!r} asked" for k, v in key.items()
                     if saved.get(k) != v)
    return f"{path} is another split of this data ({diff}); " + way_out


def load_or_make_splits(catalog: pd.DataFrame, run, **kwargs) -> pd.DataFrame:
    """The run folder's split if its key matches the one asked for, else make and save it.

    Args:
        catalog: the catalog to split.
        run: the run folder (a :class:`skinlib.rundir.RunDir` or a path): ``splits.csv`` and
            its key ``splits.json`` live there.
        kwargs: ``val_frac``, ``test_frac``, ``k_folds``, ``seed`` (:func:`make_splits`).

    Raises:
        SplitError: the saved split has no key or another one (other data, seed, fractions or
            K); the message names the way out (another run folder, or delete the files).
    """
    from skinlib.rundir import RunDir

    run = run if isinstance(run, RunDir) else RunDir(run)
    key, path = split_key(catalog, **kwargs), run.splits_csv
    if path.exists():
        saved_key = run.read_record(SPLIT_KEY_FILE)
        if saved_key != key:
            raise SplitError(_mismatch(path, saved_key, key))
        saved = pd.read_csv(path, dtype={"image_id": str, "lesion_id": str, "dx": str})
        assert_lesion_disjoint(saved)
        return saved
    splits = make_splits(catalog, **kwargs)
    save_splits(splits, path)
    run.write_record(SPLIT_KEY_FILE, key)
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
