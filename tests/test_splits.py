"""Lesion-grouped, stratified splits: no lesion on two sides, class shares kept, re-used."""

import numpy as np
import pandas as pd
import pytest

from skinlib import splits


def _catalog(n_lesions=600, seed=0):
    rng = np.random.default_rng(seed)
    dx = rng.choice(["nv", "mel", "bkl", "bcc", "akiec", "vasc", "df"], size=n_lesions,
                    p=[0.67, 0.11, 0.11, 0.05, 0.03, 0.015, 0.015])
    rows = []
    for i, d in enumerate(dx):
        for j in range(rng.integers(1, 4)):
            rows.append({"image_id": f"ISIC_{i:05d}{j}", "lesion_id": f"HAM_{i:05d}", "dx": d})
    return pd.DataFrame(rows)


def test_lesion_disjoint_and_stratified():
    cat = _catalog()
    sp = splits.make_splits(cat, k_folds=3, seed=1)
    assert len(sp) == len(cat) and set(sp["image_id"]) == set(cat["image_id"])
    assert (sp.groupby("lesion_id")["split"].nunique() == 1).all()
    shares = splits.class_shares(sp)
    for col in ("train", "val", "test"):
        assert (shares[col] - shares["all"]).abs().max() < 0.03, shares
    assert sp["split"].value_counts(normalize=True)["train"] == pytest.approx(0.70, abs=0.02)


def test_folds_cover_trainval_once_and_are_lesion_disjoint():
    sp = splits.make_splits(_catalog(), k_folds=4, seed=2)
    trval = sp[sp["split"] != "test"]
    assert set(trval["fold"]) == {0, 1, 2, 3}
    assert (sp.loc[sp["split"] == "test", "fold"] == -1).all()
    assert (trval.groupby("lesion_id")["fold"].nunique() == 1).all()
    sizes = trval["fold"].value_counts()
    assert sizes.max() / sizes.min() < 1.2


def test_same_seed_same_bytes(tmp_path):
    cat = _catalog()
    a = splits.save_splits(splits.make_splits(cat, seed=7), tmp_path / "a.csv").read_bytes()
    b = splits.save_splits(splits.make_splits(cat.sample(frac=1, random_state=3), seed=7),
                           tmp_path / "b.csv").read_bytes()
    c = splits.save_splits(splits.make_splits(cat, seed=8), tmp_path / "c.csv").read_bytes()
    assert a == b and a != c


def test_leak_detected():
    sp = splits.make_splits(_catalog(), seed=0)
    lesion = sp.groupby("lesion_id").size().idxmax()  # a lesion with several images
    idx = sp.index[sp["lesion_id"] == lesion]
    sp.loc[idx[0], "split"] = "train"
    sp.loc[idx[1], "split"] = "test"
    with pytest.raises(splits.SplitError, match="cross"):
        splits.assert_lesion_disjoint(sp)


def test_image_level_split_leaks():
    sp = splits.make_splits(_catalog(), seed=0, group=False)
    assert (sp.groupby("lesion_id")["split"].nunique() > 1).any()


def test_reuse_and_mismatch(tmp_path):
    cat = _catalog()
    path = tmp_path / "splits.csv"
    first = splits.load_or_make_splits(cat, path, seed=3)
    again = splits.load_or_make_splits(cat, path, seed=99)  # saved split wins
    pd.testing.assert_frame_equal(first, again, check_dtype=False)
    with pytest.raises(splits.SplitError, match="other data"):
        splits.load_or_make_splits(cat.iloc[5:], path)


def test_bad_fractions():
    with pytest.raises(splits.SplitError, match="sum to less than 1"):
        splits.make_splits(_catalog(), val_frac=0.5, test_frac=0.5)


@pytest.mark.realdata
def test_real_catalog_split(shared_data):
    meta = pd.read_csv(shared_data / "ham10000_metadata" / "HAM10000_metadata.csv")
    sp = splits.make_splits(meta, seed=42)
    assert sp["lesion_id"].nunique() == 7470
    assert (sp.groupby("lesion_id")["split"].nunique() == 1).all()
    assert (splits.class_shares(sp).drop(columns="all").sub(
        splits.class_shares(sp)["all"], axis=0).abs().max().max()) < 0.02
