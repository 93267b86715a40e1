"""K-fold assignment, BMA weights, averaging and temperature scaling."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from skinlib import ensemble, metrics
from skinlib.training import kfold
from skinlib.splits import make_splits


@pytest.fixture(scope="module")
def catalog():
    rng = np.random.default_rng(0)
    n_lesions = 150
    lesion = np.repeat(np.arange(n_lesions), rng.integers(1, 4, n_lesions))
    dx = np.array(["nv", "mel", "bkl", "bcc"])[lesion % 4]
    cat = pd.DataFrame({"image_id": [f"ISIC_{i:07d}" for i in range(len(lesion))],
                        "lesion_id": [f"HAM_{v:07d}" for v in lesion], "dx": dx})
    sp = make_splits(cat, k_folds=3, seed=1)
    cat = cat.merge(sp[["image_id", "split", "fold"]], on="image_id")
    cat["label"] = pd.Categorical(cat["dx"]).codes
    return cat


@pytest.mark.parametrize("holdout,splits", [("val", {"train"}), ("none", {"train", "val"})])
def test_folds_lesion_disjoint_and_cover_pool_once(catalog, holdout, splits):
    folds = kfold.fold_frames(catalog, holdout=holdout)
    assert len(folds) == 3
    pool = catalog[catalog["split"].isin(splits)]
    held_ids = np.concatenate([h["image_id"].to_numpy() for _, h in folds])
    assert sorted(held_ids) == sorted(pool["image_id"])  # every pool image held out once
    for tr, held in folds:
        assert not set(tr["lesion_id"]) & set(held["lesion_id"])
        assert len(tr) + len(held) == len(pool)
        assert set(tr["split"]) | set(held["split"]) <= splits
        assert not set(held["image_id"]) & set(catalog.loc[catalog["split"] == "test", "image_id"])
    if holdout == "val":  # the shared validation split is in no fold
        val_ids = set(catalog.loc[catalog["split"] == "val", "image_id"])
        assert all(not set(tr["image_id"]) & val_ids for tr, _ in folds)


def test_folds_refuse_bad_arguments(catalog):
    with pytest.raises(ValueError, match="holdout"):
        kfold.fold_frames(catalog, holdout="test")
    with pytest.raises(ValueError, match="lacks"):
        kfold.fold_frames(catalog.drop(columns="fold"))


def _probs(y, n_classes, strength, rng):
    """Probabilities that put ``strength`` extra logit on the true class."""
    logits = rng.normal(0, 1, (len(y), n_classes))
    logits[np.arange(len(y)), y] += strength
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)


def test_bma_weights_favour_the_better_model_and_are_a_distribution():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, 400)
    probs = [_probs(y, 5, s, rng) for s in (0.2, 2.5, 0.5)]
    ll = [ensemble.log_likelihood(y, p) for p in probs]
    for tempering in ("per_image", "none", 0.01):
        w = ensemble.bma_weights(ll, len(y), tempering)
        assert (w >= 0).all() and np.isclose(w.sum(), 1.0)
        assert int(np.argmax(w)) == 1
    raw = ensemble.bma_weights(ll, len(y), "none")
    tempered = ensemble.bma_weights(ll, len(y), "per_image")
    assert raw[1] > 0.999  # the untempered posterior puts all weight on one model
    assert 0.34 < tempered[1] < 0.99  # tempered: favoured but still an average
    equal = ensemble.bma_weights([-10.0, -10.0], 10)
    np.testing.assert_allclose(equal, [0.5, 0.5])


def test_bma_weights_refuse_bad_input():
    with pytest.raises(ValueError):
        ensemble.bma_weights([], 10)
    with pytest.raises(ValueError):
        ensemble.bma_weights([np.nan, 1.0], 10)
    with pytest.raises(ValueError, match="tempering"):
        ensemble.bma_weights([-1.0, -2.0], 10, tempering="sqrt")


def test_average_is_a_proper_distribution():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 7, 50)
    probs = [_probs(y, 7, s, rng) for s in (0.5, 1.0)]
    for w in (None, [0.3, 0.7], [1.0, 0.0]):
        avg = ensemble.average(probs, w)
        assert avg.shape == (50, 7) and (avg >= 0).all()
        np.testing.assert_allclose(avg.sum(axis=1), 1.0)
    np.testing.assert_allclose(ensemble.average(probs, [1.0, 0.0]), probs[0])
    with pytest.raises(ValueError, match="summing to 1"):
        ensemble.average(probs, [0.5, 0.6])


def test_temperature_scaling_recovers_overconfidence_and_lowers_ece():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 4, 3000)
    calibrated = _probs(y, 4, 1.0, rng)
    overconfident = ensemble.apply_temperature(calibrated, 1 / 3)  # sharpened 3x
    t = ensemble.fit_temperature(y, overconfident)
    assert 2.0 < t < 4.5
    fixed = ensemble.apply_temperature(overconfident, t)
    np.testing.assert_allclose(fixed.sum(axis=1), 1.0)
    assert (fixed.argmax(1) == overconfident.argmax(1)).all()  # ranking kept
    assert (metrics.expected_calibration_error(y, fixed)
            < metrics.expected_calibration_error(y, overconfident))
    with pytest.raises(ValueError):
        ensemble.apply_temperature(calibrated, 0.0)


def test_oof_table():
    folds = [{"fold": k, "heldout": pd.DataFrame({"image_id": [f"a{k}", f"b{k}"],
                                                  "label": [0, 1]}),
              "oof": np.array([[0.7, 0.3], [0.2, 0.8]])} for k in range(2)]
    table = ensemble.oof_table(folds, ["x", "y"])
    assert list(table.columns) == ["image_id", "label", "fold", "x", "y"] and len(table) == 4
    np.testing.assert_array_equal(table.loc[table["fold"] == 1, ["x", "y"]].to_numpy(),
                                  folds[1]["oof"])
