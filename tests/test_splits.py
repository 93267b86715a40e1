"""Lesion-grouped, stratified splits: no lesion on two sides, class shares kept, re-used."""

import json

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


def test_reuse_only_the_split_asked_for(tmp_path):
    cat = _catalog()
    run = tmp_path / "run"
    first = splits.load_or_make_splits(cat, run, seed=3, k_folds=3)
    key = json.loads((run / "splits.json").read_text())
    assert key == splits.split_key(cat, seed=3, k_folds=3) and key["seed"] == 3
    again = splits.load_or_make_splits(cat, run, seed=3, k_folds=3)  # same key: re-used
    pd.testing.assert_frame_equal(first, again, check_dtype=False)
    for change, named in (({"seed": 99}, "seed=3 there but 99 asked"),
                          ({"test_frac": 0.2}, "test_frac=0.15 there but 0.2 asked"),
                          ({"k_folds": 5}, "k_folds=3 there but 5 asked")):
        with pytest.raises(splits.SplitError, match=named + ".*another run folder.*delete"):
            splits.load_or_make_splits(cat, run, **{"seed": 3, "k_folds": 3, **change})
    with pytest.raises(splits.SplitError, match="other data"):
        splits.load_or_make_splits(cat.iloc[5:], run, seed=3, k_folds=3)
    (run / "splits.json").unlink()  # a split of an older skinlib has no key: refused
    with pytest.raises(splits.SplitError, match="no key file.*older skinlib.*--out"):
        splits.load_or_make_splits(cat, run, seed=3, k_folds=3)


def test_the_number_of_folds_never_moves_the_test_split():
    cat = _catalog()
    by_k = {k: splits.make_splits(cat, k_folds=k, seed=11) for k in (2, 3, 5)}
    for k in (3, 5):
        pd.testing.assert_series_equal(by_k[k]["split"], by_k[2]["split"])
        assert set(by_k[k]["fold"]) == {-1, *range(k)}
    assert not by_k[3]["fold"].equals(by_k[5]["fold"])


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
