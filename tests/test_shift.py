"""Source shift (notebook 08): the leave-one-source-out split on the fake dataset, importance
weights, the label/acquisition decomposition and the lesion-level CIs it takes from metrics."""

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from skinlib import data, info, metrics, shift, splits

CLASSES = info.classes("ham10000")
K = len(CLASSES)


@pytest.fixture(scope="module")
def catalog(fake_root):
    cat = data.load_catalog(str(fake_root), validate=False)
    return splits.attach(cat, splits.make_splits(cat, k_folds=2, seed=42))


@pytest.mark.parametrize("source", ["rosendahl", "vidir_modern"])
def test_leave_one_source_out_keeps_lesions_on_one_side(catalog, source):
    parts = shift.leave_one_source_out(catalog, source)
    training_side = pd.concat([parts.train, parts.val, parts.id_test])
    assert (parts.heldout["source_site"] == source).all() and len(parts.heldout) > 0
    assert not (training_side["source_site"] == source).any()
    assert not set(training_side["lesion_id"]) & set(parts.heldout["lesion_id"])
    sides = [set(f["lesion_id"]) for f in (parts.train, parts.val, parts.id_test)]
    assert not (sides[0] & sides[1] or sides[0] & sides[2] or sides[1] & sides[2])
    assert set(parts.id_test["image_id"]) <= set(catalog.loc[catalog["split"] == "test", "image_id"])
    # every image is in exactly one frame or counted as dropped
    n = len(training_side) + len(parts.heldout) + parts.n_dropped
    assert n == len(catalog)
    assert len(training_side) + len(parts.heldout) == len(
        set(training_side["image_id"]) | set(parts.heldout["image_id"]))


def test_a_lesion_spanning_two_sources_is_dropped_from_training(catalog):
    cat = catalog.copy()
    held = cat.index[cat["source_site"] == "rosendahl"][0]
    other = cat.index[cat["source_site"] == "vidir_modern"][0]
    cat.loc[other, "lesion_id"] = cat.loc[held, "lesion_id"]
    parts = shift.leave_one_source_out(cat, "rosendahl")
    assert parts.n_dropped == 1
    assert cat.loc[other, "image_id"] not in set(pd.concat([parts.train, parts.val,
                                                            parts.id_test])["image_id"])


def test_sources_are_checked(catalog):
    with pytest.raises(ValueError, match="not in the catalog"):
        shift.leave_one_source_out(catalog, "nowhere")
    with pytest.raises(ValueError, match="Dataverse metadata"):
        shift.source_table(catalog.assign(source_site=""), CLASSES)
    table = shift.source_table(catalog, CLASSES)
    assert table["images"].sum() == len(catalog)
    assert table.loc["rosendahl", CLASSES].sum() == (catalog["source_site"] == "rosendahl").sum()


def test_source_notes_flag_a_source_without_malignant_classes():
    real = pd.DataFrame({"akiec": [0, 295], "bcc": [2, 296], "bkl": [124, 490], "df": [30, 30],
                         "mel": [24, 342], "nv": [3720, 803], "vasc": [54, 3]},
                        index=["vidir_molemax", "rosendahl"])
    real["images"] = real[CLASSES].sum(axis=1)
    notes = shift.source_notes(real, CLASSES, min_images=10)
    assert "not a useful held-out source" in notes[0] and "akiec (0), bcc (2)" in notes[0]
    assert "94% nv" in notes[0]
    assert notes[1].endswith("usable as a held-out source.") and "vasc (3)" in notes[1]


def test_importance_weights_reproduce_the_training_mix():
    rng = np.random.default_rng(0)
    y = rng.choice(K, 500, p=[0.2, 0.2, 0.2, 0.05, 0.15, 0.15, 0.05])
    mix = np.array([0.03, 0.05, 0.11, 0.01, 0.11, 0.67, 0.02])
    w = shift.importance_weights(y, mix)
    got = np.bincount(y, weights=w, minlength=K) / w.sum()
    np.testing.assert_allclose(got, mix, atol=1e-12)
    assert w.sum() == pytest.approx(len(y))  # weights average 1
    # a class with zero target share gets weight 0, the rest renormalised
    part = mix.copy()
    part[0] = 0
    w0 = shift.importance_weights(y, part)
    assert (w0[y == 0] == 0).all()
    np.testing.assert_allclose(np.bincount(y, weights=w0, minlength=K) / w0.sum(),
                               part / part.sum(), atol=1e-12)
    with pytest.raises(ValueError, match="no held-out image"):
        shift.importance_weights(y[y != 1], mix)


def _scored(n, mix, hit_rate, seed):
    """Labels drawn from mix, predictions right with probability hit_rate[c], one lesion per
    two images."""
    rng = np.random.default_rng(seed)
    y = rng.choice(K, n, p=mix)
    y[:K] = np.arange(K)
    right = rng.random(n) < np.asarray(hit_rate)[y]
    pred = np.where(right, y, (y + 1) % K)
    return shift.Scored(y, pred, np.arange(n) // 2)


def test_decomposition_adds_up_and_matches_its_definitions():
    train_mix = np.array([0.05, 0.05, 0.1, 0.05, 0.1, 0.6, 0.05])
    ho_mix = np.array([0.15, 0.15, 0.2, 0.05, 0.15, 0.25, 0.05])
    hits = np.array([0.5, 0.6, 0.6, 0.5, 0.6, 0.9, 0.8])
    ind, ho = _scored(800, train_mix, hits, 1), _scored(600, ho_mix, hits * 0.8, 2)
    dec = shift.decompose(ind, ho, train_mix, CLASSES, min_images=1, n_bootstrap=200, seed=3)
    f = {m: v["value"] for m, v in dec["figures"].items()}
    assert f["accuracy_drop"] == pytest.approx(f["label_shift"] + f["acquisition_shift"])
    assert f["heldout_accuracy"] == pytest.approx(skm.accuracy_score(ho.y, ho.pred))
    assert f["heldout_balanced_accuracy"] == pytest.approx(
        skm.balanced_accuracy_score(ho.y, ho.pred))
    w = shift.importance_weights(ho.y, train_mix)
    assert f["heldout_accuracy_reweighted"] == pytest.approx(
        skm.accuracy_score(ho.y, ho.pred, sample_weight=w))
    w_id = shift.importance_weights(ind.y, train_mix)
    assert f["in_distribution_accuracy"] == pytest.approx(
        skm.accuracy_score(ind.y, ind.pred, sample_weight=w_id))
    assert f["balanced_accuracy_drop"] == pytest.approx(
        f["in_distribution_balanced_accuracy"] - f["heldout_balanced_accuracy"])
    for m, v in dec["figures"].items():
        assert v["ci95"][0] <= v["value"] <= v["ci95"][1], m
    # recall fell in every class: acquisition shift, clearly positive
    assert dec["figures"]["acquisition_shift"]["excludes_0"] and dec["dominant"] == "acquisition"
    assert "acquisition shift dominates" in shift.verdict("x", dec)


def test_pure_label_shift_has_no_acquisition_part():
    train_mix = np.array([0.05, 0.05, 0.1, 0.05, 0.1, 0.6, 0.05])
    y = np.repeat(np.arange(K), 40)
    pred = np.where(np.arange(len(y)) % 40 < (20 + 5 * (y == 5)), y, (y + 1) % K)
    ind = shift.Scored(y, pred, np.arange(len(y)))
    i = np.arange(len(y)) % 40
    keep = (y != 5) | (i < 5) | (i >= 37)  # nv rare in the held-out set, recall still 5/8
    ho = shift.Scored(y[keep], pred[keep], np.arange(keep.sum()) + 10_000)
    hits = np.bincount(ho.y[ho.pred == ho.y], minlength=K) / np.bincount(ho.y, minlength=K)
    hits_id = np.bincount(y[pred == y], minlength=K) / np.bincount(y, minlength=K)
    np.testing.assert_allclose(hits, hits_id)  # same recall per class in both sets
    dec = shift.decompose(ind, ho, train_mix, CLASSES, min_images=1, n_bootstrap=0)
    f = {m: v["value"] for m, v in dec["figures"].items()}
    assert f["acquisition_shift"] == pytest.approx(0.0, abs=1e-12)
    assert f["balanced_accuracy_drop"] == pytest.approx(0.0, abs=1e-12)
    assert f["label_shift"] > 0.05 and dec["dominant"] == "label"


def test_kept_classes_leave_out_rare_held_out_classes():
    ind = _scored(400, np.full(K, 1 / K), np.full(K, 0.7), 5)
    y = np.r_[np.repeat(np.arange(K - 1), 20), [K - 1] * 3]
    ho = shift.Scored(y, y.copy(), np.arange(len(y)))
    dec = shift.decompose(ind, ho, np.full(K, 1 / K), CLASSES, min_images=10, n_bootstrap=0)
    assert dec["classes_left_out"] == {"vasc": 3}
    assert "vasc" not in dec["train_mix"] and sum(dec["train_mix"].values()) == pytest.approx(1)
    with pytest.raises(ValueError, match="lower min_images"):
        shift.kept_classes(ind.y, y, np.full(K, 1 / K), min_images=100)


def test_decomposition_cis_resample_lesions_from_metrics():
    """Each lesion photographed four times: the decomposition's CIs (lesion draws from
    metrics.bootstrap_weights) are wider than if every image were its own lesion, and the
    record names the unit and counts both sets' lesions."""
    ind, ho = _scored(200, np.full(K, 1 / K), np.full(K, 0.7), 1), \
        _scored(150, np.full(K, 1 / K), np.full(K, 0.5), 2)

    def quadrupled(s, lesions):
        return shift.Scored(np.repeat(s.y, 4), np.repeat(s.pred, 4), lesions)

    kw = dict(min_images=1, n_bootstrap=400, seed=0)
    grouped = shift.decompose(quadrupled(ind, np.repeat(np.arange(200), 4)),
                              quadrupled(ho, np.repeat(np.arange(150), 4) + 1000),
                              np.full(K, 1 / K), CLASSES, **kw)
    alone = shift.decompose(quadrupled(ind, np.arange(800)), quadrupled(ho, np.arange(600)),
                            np.full(K, 1 / K), CLASSES, **kw)
    width = {k: np.diff(d["figures"]["accuracy_drop"]["ci95"])[0]
             for k, d in (("lesion", grouped), ("image", alone))}
    assert width["lesion"] > 1.5 * width["image"], width
    assert grouped["bootstrap"] == metrics.bootstrap_record("lesion", 400, 350, 0)
    assert grouped["repeats"] == 1
    assert grouped["figures"]["accuracy_drop"]["value"] == pytest.approx(
        alone["figures"]["accuracy_drop"]["value"])
    with pytest.raises(ValueError, match="missing lesion ids"):
        shift.decompose(ind, ho._replace(groups=np.r_[[None], ho.groups[1:]]), np.full(K, 1 / K),
                        CLASSES, **kw)
