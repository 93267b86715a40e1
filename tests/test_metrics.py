"""Tests for skinlib.metrics: every figure against scikit-learn, CIs, comparisons, bad input."""

import json
import warnings

import numpy as np
import pytest
from sklearn import metrics as skm
from threadpoolctl import threadpool_limits

from skinlib import info, metrics

CLASSES = info.classes("ham10000")
K = len(CLASSES)
PRIORS = [0.03, 0.05, 0.11, 0.01, 0.11, 0.67, 0.02]


def fake(n=600, seed=0, signal=1.5, priors=PRIORS, k=K):
    """Random labels with the HAM10000 imbalance and softmax outputs that carry some signal."""
    rng = np.random.default_rng(seed)
    y = rng.choice(k, n, p=priors)
    y[:k] = np.arange(k)  # every class present
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), y] += signal
    p = np.exp(logits)
    return y, p / p.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_figures_match_sklearn(seed):
    y, p = fake(seed=seed)
    r = metrics.evaluate(y, p, CLASSES, n_bootstrap=0)
    pred = p.argmax(axis=1)
    assert r["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert r["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, pred))
    assert r["balanced_accuracy_argmax"] == pytest.approx(r["balanced_accuracy"])
    assert r["macro_f1"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert r["macro_auc"] == pytest.approx(skm.roc_auc_score(y, p, multi_class="ovr"))
    assert r["confusion_matrix"] == skm.confusion_matrix(y, pred, labels=range(K)).tolist()
    prec, rec, f1, sup = skm.precision_recall_fscore_support(y, pred, labels=range(K),
                                                             zero_division=0)
    for c, dx in enumerate(CLASSES):
        pc = r["per_class"][dx]
        assert pc["precision"] == pytest.approx(prec[c])
        assert pc["recall"] == pytest.approx(rec[c])
        assert pc["f1"] == pytest.approx(f1[c])
        assert pc["support"] == sup[c]
        assert pc["auc"] == pytest.approx(skm.roc_auc_score(y == c, p[:, c]))
    fpr, tpr, _ = skm.roc_curve(y == CLASSES.index("mel"), p[:, CLASSES.index("mel")])
    assert r["mel_sensitivity_at_spec80"] == pytest.approx(tpr[1 - fpr >= 0.8].max())


def test_contract_keys_and_json_ready():
    y, p = fake(n=200)
    r = metrics.evaluate(y, p, CLASSES, n_bootstrap=50)
    for key in ("accuracy", "balanced_accuracy", "balanced_accuracy_argmax", "decision",
                "macro_f1", "macro_auc", "per_class", "confusion_matrix", "classes", "ece",
                "mel_sensitivity_at_spec80", "ci95", "n_bootstrap"):
        assert key in r
    assert set(r["ci95"]) == set(metrics.CI_METRICS)
    assert r["n_bootstrap"] == 50 and r["decision"] == "argmax"
    assert r["bootstrap"] == {"unit": "image", "n": 50, "n_units": 200, "seed": 0}
    json.dumps(r, allow_nan=False)  # no NumPy types, no NaN


def test_auc_with_ties_and_missing_class():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, 300)
    y[y == 2] = 1  # class 2 absent: its AUC is undefined, the macro skips it
    p = np.round(rng.dirichlet(np.ones(3), 300), 1)  # many ties
    p = p / p.sum(axis=1, keepdims=True)
    r = metrics.evaluate(y, p, ["a", "b", "c"], n_bootstrap=0)
    assert r["per_class"]["c"]["auc"] is None and r["per_class"]["c"]["recall"] is None
    assert r["per_class"]["a"]["auc"] == pytest.approx(skm.roc_auc_score(y == 0, p[:, 0]))
    expected = np.mean([skm.roc_auc_score(y == c, p[:, c]) for c in (0, 1)])
    assert r["macro_auc"] == pytest.approx(expected)
    assert r["mel_sensitivity_at_spec80"] is None  # no "mel" class
    assert r["balanced_accuracy"] == pytest.approx(
        skm.balanced_accuracy_score(y, p.argmax(axis=1)))


def test_sensitivity_at_specificity():
    y = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 1])
    s = np.array([.1, .2, .3, .4, .9, .35, .5, .6, .7, .8])
    # threshold 0.5: spec 4/5 = 0.8, sens 4/5; threshold 0.35 would give spec 0.6
    assert metrics.sensitivity_at_specificity(y, s, 0.8) == pytest.approx(0.8)
    assert metrics.sensitivity_at_specificity(y, s, 1.0) == pytest.approx(0.0)
    assert metrics.sensitivity_at_specificity(y, s, 0.0) == pytest.approx(1.0)
    assert np.isnan(metrics.sensitivity_at_specificity(np.zeros(4), np.arange(4.0)))


def test_ece_calibrated_vs_overconfident():
    rng = np.random.default_rng(0)
    n = 20000
    conf = rng.uniform(0.5, 1.0, n)
    p = np.stack([conf, 1 - conf], axis=1)
    y_calibrated = np.where(rng.uniform(size=n) < conf, 0, 1)  # correct with probability conf
    assert metrics.expected_calibration_error(y_calibrated, p) < 0.02
    y_over = np.where(rng.uniform(size=n) < 0.6, 0, 1)  # correct 60% whatever the confidence
    assert metrics.expected_calibration_error(y_over, p) > 0.1
    table = metrics.reliability_table(y_calibrated, p, n_bins=10)
    assert len(table) == 10 and table["count"].sum() == n
    assert table["count"].iloc[:4].sum() == 0  # top-label confidence is never below 0.5
    full = table.dropna()
    assert np.all(np.abs(full["accuracy"] - full["confidence"]) < 0.05)


def test_bootstrap_ci_contains_estimate_and_narrows():
    widths = []
    for n in (200, 3000):
        y, p = fake(n=n, seed=5)
        r = metrics.evaluate(y, p, CLASSES, n_bootstrap=300, seed=0)
        for m in ("accuracy", "balanced_accuracy", "macro_auc", "macro_f1", "ece"):
            lo, hi = r["ci95"][m]
            assert lo <= r[m] <= hi, m
        widths.append(r["ci95"]["macro_auc"][1] - r["ci95"]["macro_auc"][0])
    assert widths[1] < widths[0] / 2
    again = metrics.evaluate(y, p, CLASSES, n_bootstrap=300, seed=0)
    assert again["ci95"] == r["ci95"]  # fixed seed


def test_bootstrap_skips_resamples_without_positives():
    y, p = fake(n=100, seed=2)
    r = metrics.evaluate(y, p, CLASSES, n_bootstrap=200)
    # df has a single test image: it is missing from ~37% of resamples
    assert r["bootstrap_skipped"]["macro_auc"] > 20
    assert r["ci95"]["macro_auc"] is not None


def test_compare_identical_and_different():
    y, p = fake(n=300, seed=4)
    same = metrics.compare(y, p, p, CLASSES, n_bootstrap=200)
    for m in ("balanced_accuracy", "macro_auc", "minority_recall", "mel_sensitivity_at_spec80"):
        assert same[m]["diff"] == 0 and same[m]["ci95"] == [0.0, 0.0]
        assert same[m]["significant"] is False
    rng = np.random.default_rng(0)
    noise = rng.dirichlet(np.ones(K), len(y))
    worse = metrics.compare(y, p, noise, CLASSES, n_bootstrap=200)
    auc = worse["macro_auc"]
    assert auc["diff"] < 0 and auc["significant"] and auc["ci95"][1] < 0
    assert auc["a"] == pytest.approx(skm.roc_auc_score(y, p, multi_class="ovr"))


def test_bad_inputs_raise_with_message():
    y, p = fake(n=50)
    with pytest.raises(ValueError, match="logits; apply softmax"):
        metrics.evaluate(y, np.log(p), CLASSES)
    with pytest.raises(ValueError, match="columns but there are"):
        metrics.evaluate(y, p[:, :5], CLASSES)
    with pytest.raises(ValueError, match="outside"):
        metrics.evaluate(np.r_[y[:-1], 9], p, CLASSES)
    with pytest.raises(ValueError, match="NaN"):
        bad = p.copy()
        bad[0, 0] = np.nan
        metrics.evaluate(y, bad, CLASSES)
    with pytest.raises(ValueError, match="rows"):
        metrics.evaluate(y[:-1], p, CLASSES)
    with pytest.raises(ValueError, match="unknown decision"):
        metrics.evaluate(y, p, CLASSES, decision="vote")
    with pytest.raises(ValueError, match="needs priors"):
        metrics.evaluate(y, p, CLASSES, decision="prior_corrected")


def test_result_json_merges_metadata_and_refuses_gaps():
    y, p = fake(n=100)
    r = metrics.evaluate(y, p, CLASSES, n_bootstrap=20)
    meta = dict(model="cnn", profile="smoke", data="synthetic", split="test", image_size=(24, 32),
                n_train=70, n_test=100, train_seconds=np.float32(1.5))
    with pytest.raises(ValueError, match="missing metadata.*train_seconds"):
        metrics.result_json(r, **{k: v for k, v in meta.items() if k != "train_seconds"})
    with pytest.raises(ValueError, match="evaluate"):
        metrics.result_json({"accuracy": 1.0}, **meta)
    doc = metrics.result_json(r, **meta)
    assert doc["image_size"] == [24, 32] and doc["model"] == "cnn"
    assert doc["train_seconds"] == 1.5 and type(doc["train_seconds"]) is float
    assert json.loads(json.dumps(doc)) == doc  # plain JSON types only


def test_most_confused_is_the_largest_off_diagonal_share():
    result = {"classes": ["a", "b", "c"],
              "confusion_matrix": [[8, 2, 0], [1, 1, 0], [0, 3, 27]]}
    assert metrics.most_confused(result) == ("b", "a", 0.5)


# --------------------------------------------------------------------------------------------
# lesion-level bootstrap, seeds and verdicts, the debiased ECE
# --------------------------------------------------------------------------------------------

def clustered_set(rng, n_lesions=100, means=(0.5, 0.65, 0.8)):
    """A test set of lesions with 1-6 images each; a lesion's images are right together more
    often than chance (each lesion has its own chance of being recognised, Beta around the
    class mean). The true balanced accuracy is the mean of ``means``."""
    cls = rng.integers(0, len(means), n_lesions)
    mean = np.asarray(means)[cls]
    p_lesion = rng.beta(mean, 1 - mean)
    lesion = np.repeat(np.arange(n_lesions), rng.integers(1, 7, n_lesions))
    y = cls[lesion]
    right = rng.uniform(size=len(y)) < p_lesion[lesion]
    pred = np.where(right, y, (y + rng.integers(1, len(means), len(y))) % len(means))
    probs = np.full((len(y), len(means)), 0.2)
    probs[np.arange(len(y)), pred] = 0.6
    return y, probs, lesion


def test_lesion_bootstrap_ci_covers_the_true_balanced_accuracy():
    """300 clustered test sets: the lesion-level 95% CI holds the truth in >= 92% of them;
    the image-level CI (printed beside it) is too narrow."""
    rng, truth, hits = np.random.default_rng(0), np.mean([0.5, 0.65, 0.8]), {}
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the image-level runs warn, as they should
        for i in range(300):
            y, p, lesion = clustered_set(rng)
            for unit, groups in (("lesion", lesion), ("image", None)):
                r = metrics.evaluate(y, p, ["a", "b", "c"], groups=groups, n_bootstrap=200,
                                     seed=i)
                assert r["bootstrap"]["unit"] == unit
                lo, hi = r["ci95"]["balanced_accuracy"]
                hits[unit] = hits.get(unit, 0) + int(lo <= truth <= hi)
    print(f"coverage of the 95% CI: lesion-level {hits['lesion'] / 300:.1%}, "
          f"image-level {hits['image'] / 300:.1%}")
    assert hits["lesion"] / 300 >= 0.92
    assert hits["image"] < hits["lesion"]


def test_a_resample_takes_whole_lesions_and_images_alone_warn():
    lesion = np.array([0, 0, 0, 1, 2, 2, 3, 4, 4, 4, 4])
    units, unit = metrics.resampling_units([f"HAM_{v}" for v in lesion], len(lesion))
    assert unit == "lesion" and units.tolist() == lesion.tolist()
    (W,), *_ = list(metrics.bootstrap_weights([units], 300, seed=0))
    for g in range(5):  # every image of a lesion carries its lesion's draw count
        assert (W[:, lesion == g] == W[:, [np.flatnonzero(lesion == g)[0]]]).all()
    assert (W[:, lesion == 0].sum(axis=1) % 3 == 0).all() and W.sum(axis=1).max() > 5
    with pytest.warns(UserWarning, match="bootstrap over images"):
        images, unit = metrics.resampling_units(None, 4)
    assert unit == "image" and images.tolist() == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="3 entries but there are 4"):
        metrics.resampling_units(["a", "b", "c"], 4)
    y, p, groups = clustered_set(np.random.default_rng(1))
    r = metrics.evaluate(y, p, ["a", "b", "c"], groups=groups, n_bootstrap=50)
    assert r["bootstrap"] == {"unit": "lesion", "n": 50, "n_units": 100, "seed": 0}


def test_lesion_level_ci_is_wider_than_the_image_level_one():
    y, p, lesion = clustered_set(np.random.default_rng(2), n_lesions=300)
    with pytest.warns(UserWarning):
        img = metrics.evaluate(y, p, ["a", "b", "c"], n_bootstrap=400)["ci95"]
    les = metrics.evaluate(y, p, ["a", "b", "c"], groups=lesion, n_bootstrap=400)["ci95"]
    width = {m: (les[m][1] - les[m][0]) / (img[m][1] - img[m][0])
             for m in ("accuracy", "balanced_accuracy")}
    assert min(width.values()) > 1.2, width


def test_paired_lesion_ci_is_wider_than_image_ci_for_duplicated_images():
    """Each lesion photographed four times: compare's paired CI over lesions is wider than over
    images (every image its own unit); the points are the plain figures."""
    rng = np.random.default_rng(0)
    y1 = rng.choice(K, 150)
    p1 = np.where(rng.random(150) < 0.6, y1, (y1 + 2) % K)
    y, pred = np.repeat(y1, 4), np.repeat(p1, 4)
    onehot = np.eye(K)
    kw = dict(n_bootstrap=400, seed=0, subset=["nv"])
    les = metrics.compare(y, onehot[(y + 1) % K], onehot[pred], CLASSES,
                          groups=np.repeat(np.arange(150), 4), **kw)
    img = metrics.compare(y, onehot[(y + 1) % K], onehot[pred], CLASSES, groups=np.arange(600),
                          **kw)
    width = {k: np.diff(v["balanced_accuracy"]["ci95"])[0] for k, v in (("les", les),
                                                                          ("img", img))}
    assert width["les"] > 1.5 * width["img"], width
    assert les["balanced_accuracy"]["diff"] == pytest.approx(skm.balanced_accuracy_score(y, pred))
    assert les["bootstrap"] == metrics.bootstrap_record("lesion", 400, 150, 0)
    assert les["subset_recall"]["b"] == pytest.approx(
        skm.recall_score(y, pred, labels=[CLASSES.index("nv")], average="macro"))


def test_paired_compare_over_seeds():
    y, p, lesion = clustered_set(np.random.default_rng(3), n_lesions=150)
    rng = np.random.default_rng(4)
    noisy = [0.5 * p + 0.5 * rng.dirichlet(np.ones(3), len(y)) for _ in range(2)]
    kw = dict(groups=lesion, n_bootstrap=200, seed=1)
    one = metrics.compare(y, p, noisy[0], ["a", "b", "c"], **kw)
    # two identical seeds average to the one-seed comparison, CI and all, with no spread
    twice = metrics.compare(y, [p, p], [noisy[0], noisy[0]], ["a", "b", "c"], **kw)
    for m in ("balanced_accuracy", "macro_auc", "ece"):
        assert twice[m]["ci95"] == pytest.approx(one[m]["ci95"]) and twice[m]["seed_sd"] == 0
        assert twice[m]["diff"] == pytest.approx(one[m]["diff"])
    assert one["repeats"] == 1 and twice["repeats"] == 2 and one["balanced_accuracy"][
        "seed_sd"] is None
    assert one["bootstrap"]["unit"] == "lesion" and one["verdict_rule"] == metrics.VERDICT_RULE
    both = metrics.compare(y, [p, p], noisy, ["a", "b", "c"], **kw)
    other = metrics.compare(y, p, noisy[1], ["a", "b", "c"], **kw)
    ba = both["balanced_accuracy"]
    assert ba["seed_diffs"] == pytest.approx([one["balanced_accuracy"]["diff"],
                                              other["balanced_accuracy"]["diff"]])
    assert ba["diff"] == pytest.approx(np.mean(ba["seed_diffs"]))
    assert ba["seed_sd"] == pytest.approx(np.std(ba["seed_diffs"], ddof=1))
    assert ba["seed_range"] == pytest.approx([min(ba["seed_diffs"]), max(ba["seed_diffs"])])
    with pytest.raises(ValueError, match="2 seeds but probs_b 1"):
        metrics.compare(y, [p, p], [p], ["a", "b", "c"], **kw)


def test_compare_on_two_test_sets_resamples_each_set():
    """The same model on two test sets: b's lesions are drawn independently of a's."""
    rng = np.random.default_rng(5)
    (ya, pa, la), (yb, pb, lb) = clustered_set(rng), clustered_set(rng, means=(0.9, 0.9, 0.9))
    c = metrics.compare(ya, pa, pb, ["a", "b", "c"], groups=la, y_true_b=yb, groups_b=lb,
                        n_bootstrap=300)
    ba = c["balanced_accuracy"]
    assert ba["a"] == pytest.approx(metrics.balanced_accuracy(ya, pa.argmax(1), 3))
    assert ba["b"] == pytest.approx(metrics.balanced_accuracy(yb, pb.argmax(1), 3))
    assert ba["verdict"] == "better" and ba["ci95"][0] > 0
    assert c["bootstrap"]["n_units"] == 200


@pytest.mark.parametrize("ci, seeds, higher, expected", [
    ([0.01, 0.05], [0.02, 0.03, 0.04], True, "better"),
    ([0.01, 0.05], [0.02, -0.01, 0.04], True, "not distinguishable"),  # one seed disagrees
    ([-0.01, 0.05], [0.02, 0.03, 0.04], True, "not distinguishable"),  # CI holds 0
    ([-0.05, -0.01], [-0.02, -0.03], True, "worse"),
    ([-0.05, -0.01], [-0.02, -0.03], False, "better"),  # lower ECE is better
    (None, [0.02], True, "not distinguishable"),
    ([0.01, 0.05], [0.03], True, "better"),  # one seed: the CI decides
    ([0.01, 0.05], [None, 0.03], True, "not distinguishable"),
])
def test_verdict_needs_the_ci_and_every_seed(ci, seeds, higher, expected):
    assert metrics.verdict(ci, seeds, higher) == expected


def calibrated_set(rng, n=1500, k=3):
    """Softmax outputs of a perfectly calibrated model: each label is drawn from its row."""
    p = rng.dirichlet(np.full(k, 0.7), n)
    y = (rng.uniform(size=(n, 1)) > np.cumsum(p, axis=1)).sum(axis=1)
    return np.minimum(y, k - 1), p


def test_ece_interval_covers_zero_for_a_calibrated_model():
    """True ECE 0: the interval holds it and the estimate. (The percentile bootstrap of the
    plug-in ECE, used before, lay wholly above 0 and above its own estimate.)"""
    rng, covered = np.random.default_rng(6), 0
    with threadpool_limits(1):
        for i in range(40):
            y, p = calibrated_set(rng)
            r = metrics.evaluate(y, p, ["a", "b", "c"], groups=np.arange(len(y)),
                                 n_bootstrap=200, seed=i)
            lo, hi = r["ci95"]["ece"]
            covered += lo <= 0.0 <= hi
            assert lo <= r["ece"] <= hi and r["ece"] < r["ece_l1"]
    assert covered >= 36, covered


def test_ece_interval_covers_a_known_miscalibration():
    """Confidence 0.1 above the truth in every bin: the l2 error is 0.1, and the interval
    holds it in most of 40 sets."""
    rng, covered = np.random.default_rng(7), 0
    with threadpool_limits(1):
        for i in range(40):
            conf = rng.uniform(0.55, 0.95, 1500)
            y = (rng.uniform(size=1500) >= conf - 0.1).astype(int)  # label 0 right w.p. conf-0.1
            r = metrics.evaluate(y, np.stack([conf, 1 - conf], 1), ["a", "b"],
                                 groups=np.arange(1500), n_bootstrap=200, seed=i)
            covered += r["ci95"]["ece"][0] <= 0.1 <= r["ci95"]["ece"][1]
            assert r["ece"] == pytest.approx(metrics.expected_calibration_error(
                y, np.stack([conf, 1 - conf], 1)))
    assert covered >= 34, covered
