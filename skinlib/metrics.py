"""One evaluator every model goes through: figures, lesion-level bootstrap CIs, paired
comparisons over seeds, and the verdict that reads them.

Every metric is computed from per-image *weights*: the point estimate uses weight 1 for each
test image, a bootstrap resample uses how often each image was drawn. So the point figures and
their confidence intervals come from the same code, vectorised over resamples (1000 resamples
of 1,500 images x 7 classes take well under a second).

**The lesion is the unit of resampling.** Images of one lesion are near-duplicates, so they are
not independent draws: a bootstrap over images gives intervals that are too narrow. Given the
lesion id of each test image (``groups``), a resample draws *lesions* with replacement and takes
all their images (a cluster bootstrap); an image's weight is the number of times its lesion was
drawn. A paired comparison draws the same lesions for both models. Without ``groups`` the
images are resampled, with a warning, and the result says ``bootstrap: {"unit": "image"}``.

**Calibration error.** ``ece`` is the top-label l2 calibration error with the debiased estimator
of Kumar, Liang & Ma (NeurIPS 2019, "Verified uncertainty calibration"): per confidence bin the
squared gap (accuracy - confidence)^2 minus its sampling variance acc (1 - acc) / (n_bin - 1),
weighted by the bin's share, then the square root (0 if the debiased square is negative). The
plug-in ECE is biased upward (noise alone makes every gap positive), and a percentile bootstrap
of it is biased twice, so its interval sits above the estimate. The interval here is the basic
bootstrap interval of the debiased square, whose bootstrap-world truth is the sample's plug-in
square, mapped through the square root. The classic plug-in l1 ECE stays beside it as
``ece_l1`` (no interval).

No TensorFlow here: inputs are NumPy arrays of labels and class probabilities.
"""

from __future__ import annotations

import functools
import math
import warnings

import numpy as np
import pandas as pd

from skinlib.rundir import json_types

META_KEYS = ("model", "profile", "data", "split", "image_size", "n_train", "n_test",
             "train_seconds")
CI_METRICS = ("accuracy", "balanced_accuracy", "macro_auc", "macro_f1",
              "mel_sensitivity_at_spec80", "ece")
_CHUNK = 250  # bootstrap resamples evaluated at once (bounds memory: chunk x n floats)
LOWER_IS_BETTER = ("ece",)
VERDICTS = ("better", "worse", "not distinguishable")
VERDICT_RULE = ("b is 'better' (or 'worse') than a only if the 95% lesion-level paired bootstrap "
                "CI of the seed-averaged difference b - a excludes 0 AND every seed's difference "
                "has the same sign as it; otherwise 'not distinguishable'. For ece lower is "
                "better.")


# --------------------------------------------------------------------------------------------
# input checks
# --------------------------------------------------------------------------------------------

def check_labels(y, n_classes: int, name: str = "y_true") -> np.ndarray:
    """Integer label vector in ``[0, n_classes)``; ValueError naming the problem otherwise."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"{name} must be a 1-D vector of integer labels, got shape {y.shape}; "
                         f"for one-hot labels pass y.argmax(axis=1)")
    if y.size == 0:
        raise ValueError(f"{name} is empty: there is nothing to evaluate")
    if y.dtype.kind == "f":
        if np.isnan(y).any():
            raise ValueError(f"{name} contains NaN labels")
        if not np.all(y == np.round(y)):
            raise ValueError(f"{name} holds non-integer values; pass integer class labels")
    elif y.dtype.kind not in "iub":
        raise ValueError(f"{name} must hold integer labels, got dtype {y.dtype}; map dx codes to "
                         f"labels with info.classes() first")
    y = y.astype(np.int64)
    bad = (y < 0) | (y >= n_classes)
    if bad.any():
        raise ValueError(f"{name} has labels outside [0, {n_classes - 1}] (e.g. {int(y[bad][0])}) "
                         f"for {n_classes} classes; check the class list matches the labels")
    return y


def check_probs(probs, n_classes: int | None = None, name: str = "probs") -> np.ndarray:
    """Probability matrix ``(n, n_classes)`` with rows summing to 1; ValueError otherwise."""
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (n_images, n_classes), got shape {p.shape}")
    if n_classes is not None and p.shape[1] != n_classes:
        raise ValueError(f"{name} has {p.shape[1]} columns but there are {n_classes} classes; "
                         f"pass the class list the model was trained with")
    if not np.isfinite(p).all():
        raise ValueError(f"{name} contains NaN or infinite values "
                         f"({int((~np.isfinite(p)).sum())} entries); the model diverged?")
    sums = p.sum(axis=1)
    if (p < -1e-6).any() or (p > 1 + 1e-6).any() or np.abs(sums - 1).max() > 1e-3:
        raise ValueError(f"{name} rows do not sum to 1 (range {sums.min():.3g}..{sums.max():.3g}) "
                         f"or hold values outside [0, 1]: looks like logits; apply softmax")
    return np.clip(p, 0.0, 1.0)


def _check_inputs(y_true, probs, classes) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Validate one (labels, probabilities, classes) triple together."""
    classes = [str(c) for c in classes]
    if len(classes) < 2:
        raise ValueError(f"need at least 2 classes, got {classes}")
    p = check_probs(probs, len(classes))
    y = check_labels(y_true, len(classes))
    if len(y) != len(p):
        raise ValueError(f"y_true has {len(y)} labels but probs has {len(p)} rows")
    return y, p, classes


# --------------------------------------------------------------------------------------------
# weighted (bootstrap-ready) metric kernels; W is (B, n) image weights
# --------------------------------------------------------------------------------------------

def balanced_accuracy(y, pred, n_classes: int) -> float:
    """Mean recall over the classes present in y (labels already checked)."""
    support = np.bincount(y, minlength=n_classes)
    hits = np.bincount(y[pred == y], minlength=n_classes)
    present = support > 0
    return float((hits[present] / support[present]).mean())


def _weighted_auc(W: np.ndarray, positive: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """One-vs-rest AUC (Mann-Whitney, ties count 1/2) for each row of weights; NaN if undefined.

    Hand-written on purpose: ``sklearn.metrics.roc_auc_score(sample_weight=)`` gives the same
    value (to 1e-16) but one call per resample and class; this sorts once and scores every
    bootstrap row in one pass (1000 resamples x 7 classes of 1,500 images: ~1 s against ~45 s).
    """
    order = np.argsort(scores, kind="mergesort")
    s = scores[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])  # first index of each tie group
    Ws = W[:, order]
    pos = positive[order]
    wp = np.add.reduceat(Ws * pos, starts, axis=1)
    wn = np.add.reduceat(Ws * ~pos, starts, axis=1)
    below = np.cumsum(wn, axis=1) - wn
    num = (wp * (below + 0.5 * wn)).sum(axis=1)
    den = wp.sum(axis=1) * wn.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def _weighted_sens_at_spec(W, positive, scores, specificity: float) -> np.ndarray:
    """Highest sensitivity among ROC points with specificity >= target, per weight row."""
    order = np.argsort(-scores, kind="mergesort")
    s = scores[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    Ws = W[:, order]
    pos = positive[order]
    tp = np.cumsum(np.add.reduceat(Ws * pos, starts, axis=1), axis=1)
    fp = np.cumsum(np.add.reduceat(Ws * ~pos, starts, axis=1), axis=1)
    P, N = tp[:, -1:], fp[:, -1:]
    with np.errstate(invalid="ignore", divide="ignore"):
        tpr = tp / P
        spec = 1.0 - fp / N
    ok = spec >= specificity - 1e-12
    best = np.where(ok, tpr, 0.0).max(axis=1)  # the (0, 0) point always qualifies
    return np.where((P[:, 0] > 0) & (N[:, 0] > 0), best, np.nan)


def _bin_index(conf: np.ndarray, n_bins: int) -> np.ndarray:
    """Equal-width bin of each confidence, bins ``(a, b]`` (the first bin includes 0)."""
    return np.clip(np.ceil(conf * n_bins).astype(np.int64) - 1, 0, n_bins - 1)


def _weighted_ece(W, probs, y, n_bins: int) -> dict:
    """Top-label calibration error per weight row (see the module docstring).

    Returns:
        ``ece2`` (debiased squared l2 error), ``_ece2_world`` (its plug-in value, the truth of a
        bootstrap world drawn from this sample) and ``ece_l1`` (the plug-in l1 ECE).
    """
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == y).astype(np.float64)
    onehot = np.eye(n_bins)[_bin_index(conf, n_bins)]  # (n, bins)
    count = W @ onehot
    hits = W @ (onehot * correct[:, None])
    gap = hits - W @ (onehot * conf[:, None])
    total = count.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        acc, mean_gap = hits / count, gap / count
        variance = np.where(count > 1, acc * (1 - acc) / (count - 1), 0.0)
        share = count / total[:, None]
    square = np.nansum(share * mean_gap ** 2, axis=1)
    return {"ece2": square - np.nansum(share * variance, axis=1), "_ece2_world": square,
            "ece_l1": np.abs(gap).sum(axis=1) / total}


def _root(x):
    """sqrt(max(0, x)) elementwise: a debiased square back on the metric's scale."""
    return np.sqrt(np.maximum(np.asarray(x, dtype=np.float64), 0.0))


def weighted_confusion(W, y, pred, n_classes: int) -> np.ndarray:
    """Confusion matrices ``(B, true, predicted)``, one for each row of image weights ``W``
    ``(B, n)`` (weight 1 everywhere: the plain confusion matrix)."""
    y, pred, k = np.asarray(y, dtype=np.int64), np.asarray(pred, dtype=np.int64), int(n_classes)
    if y.shape != pred.shape or np.shape(W)[-1] != len(y):
        raise ValueError(f"y ({y.shape}), pred ({pred.shape}) and the weights "
                         f"({np.shape(W)}) must describe the same images")
    return (np.atleast_2d(W) @ np.eye(k * k)[y * k + pred]).reshape(-1, k, k)


def class_recalls(cm: np.ndarray) -> np.ndarray:
    """Recall of each class ``(B, k)`` from confusion matrices ``(B, k, k)``; NaN where a class
    has no image."""
    support = cm.sum(axis=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diagonal(cm, axis1=1, axis2=2) / support, np.nan)


def _weighted_scores(W, y, probs, pred, auc_classes, mel, n_bins) -> dict:
    """Every evaluated figure for each row of image weights W (shape (B, n)).

    These kernels are hand-written rather than scikit-learn's per-sample-weight metrics so that
    the point estimate (W = ones) and all bootstrap resamples come from one vectorised pass.
    """
    cm = weighted_confusion(W, y, pred, probs.shape[1])
    tp = np.diagonal(cm, axis1=1, axis2=2)
    support = cm.sum(axis=2)
    predicted = cm.sum(axis=1)
    total = support.sum(axis=1)
    recall = class_recalls(cm)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1_den = 2 * tp + (predicted - tp) + (support - tp)
        f1 = np.where(f1_den > 0, 2 * tp / f1_den, np.nan)  # NaN: class neither true nor predicted
        out = {
            "accuracy": tp.sum(axis=1) / total,
            "balanced_accuracy": np.nanmean(recall, axis=1),
            "macro_f1": np.nanmean(f1, axis=1),
        }
    aucs = np.stack([_weighted_auc(W, y == c, probs[:, c]) for c in auc_classes], axis=1) \
        if auc_classes else np.full((len(W), 1), np.nan)
    out["macro_auc"] = aucs.mean(axis=1)  # NaN when a resample lost a class: skipped later
    out.update(_weighted_ece(W, probs, y, n_bins))
    out["ece"], out["_ece_world"] = _root(out["ece2"]), _root(out["_ece2_world"])
    out["mel_sensitivity_at_spec80"] = (
        _weighted_sens_at_spec(W, y == mel, probs[:, mel], 0.80) if mel is not None
        else np.full(len(W), np.nan))
    out["_cm"] = cm
    return out


def resampling_units(groups, n: int, name: str = "groups") -> tuple[np.ndarray, str]:
    """Unit codes ``0..G-1`` of each of ``n`` images and the unit's name.

    ``groups`` (lesion ids, any hashable values) gives ``"lesion"``; ``None`` gives one unit per
    image (``"image"``) and a warning, since images of one lesion are not independent.
    """
    if groups is None:
        warnings.warn("bootstrap over images: pass groups=<lesion id of each test image> to "
                      "resample lesions (images of one lesion are not independent)",
                      stacklevel=3)
        return np.arange(n), "image"
    g = pd.Series(np.asarray(groups).ravel())
    if len(g) != n:
        raise ValueError(f"{name} has {len(g)} entries but there are {n} test images: pass "
                         f"the lesion id of each test image, in the same order")
    if g.isna().any():
        raise ValueError(f"{name} has {int(g.isna().sum())} missing lesion ids; every test "
                         f"image needs one (a lesion of its own if unknown)")
    return pd.factorize(g)[0].astype(np.int64), "lesion"


def _unit_counts(rng: np.random.Generator, n_units: int, b: int) -> np.ndarray:
    """``(b, n_units)`` draw counts: each row draws ``n_units`` units with replacement."""
    idx = rng.integers(0, n_units, size=(b, n_units)) + (np.arange(b) * n_units)[:, None]
    return np.bincount(idx.ravel(), minlength=b * n_units).reshape(b, n_units)


def bootstrap_weights(unit_sets: list[np.ndarray], n_bootstrap: int, seed: int):
    """Yield, per chunk of resamples, one ``(chunk, n)`` image-weight matrix per test set.

    Args:
        unit_sets: unit codes of each test set's images (:func:`resampling_units`); a resample
            draws the units of every set independently, and gives an image the draw count of
            its unit. With units = images this is the plain image bootstrap.
    """
    rng = np.random.default_rng(seed)
    done = 0
    while done < n_bootstrap:
        b = min(_CHUNK, n_bootstrap - done)
        yield [_unit_counts(rng, int(codes.max()) + 1, b)[:, codes].astype(np.float64)
               for codes in unit_sets]
        done += b


def interval(values, point=None, world=None) -> list | None:
    """95% interval of bootstrap ``values``; None if none is finite.

    The percentile interval; or, given the ``point`` estimate and the ``world`` value (the
    quantity's value in the bootstrap world, i.e. on this sample), the basic interval
    ``[point + world - q97.5, point + world - q2.5]``, which corrects the bias of an estimator
    whose resamples do not centre on the point estimate (the calibration error).
    """
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return None
    lo, hi = np.percentile(v, [2.5, 97.5])
    if world is None or point is None or not np.isfinite(point + world):
        return [float(lo), float(hi)]
    return [float(point + world - hi), float(point + world - lo)]


def bootstrap_record(unit: str, n_bootstrap: int, n_units: int, seed: int) -> dict:
    """How a metrics JSON records its intervals: ``{"unit", "n", "n_units", "seed"}``."""
    return {"unit": unit, "n": int(n_bootstrap), "n_units": int(n_units), "seed": int(seed)}


def _num(x) -> float | None:
    """A JSON-ready float (NaN/inf -> None)."""
    x = float(x)
    return x if math.isfinite(x) else None


# --------------------------------------------------------------------------------------------
# public metrics
# --------------------------------------------------------------------------------------------

def expected_calibration_error(y_true, probs, n_bins: int = 15, *,
                               kind: str = "l2_debiased") -> float:
    """Top-label expected calibration error with equal-width confidence bins.

    Args:
        kind: ``l2_debiased`` (the ``ece`` of :func:`evaluate`: the debiased l2 estimator of
            Kumar et al. 2019, see the module docstring), ``l2`` (its plug-in value) or ``l1``
            (the classic plug-in ECE: sum over bins of |accuracy - confidence| weighted by the
            bin's share of images).
    """
    p = check_probs(probs)
    y = check_labels(y_true, p.shape[1])
    e = _weighted_ece(np.ones((1, len(y))), p, y, n_bins)
    values = {"l2_debiased": _root(e["ece2"]), "l2": _root(e["_ece2_world"]), "l1": e["ece_l1"]}
    if kind not in values:
        raise ValueError(f"kind={kind!r}: use one of {', '.join(values)}")
    return float(values[kind][0])


def reliability_table(y_true, probs, n_bins: int = 15) -> pd.DataFrame:
    """Per-bin mean confidence, accuracy and count of the top label (reliability diagram data).

    Empty bins are kept, with NaN confidence and accuracy and count 0.
    """
    p = check_probs(probs)
    y = check_labels(y_true, p.shape[1])
    conf = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(np.float64)
    b = _bin_index(conf, n_bins)
    count = np.bincount(b, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(b, conf, minlength=n_bins) / count
        acc = np.bincount(b, correct, minlength=n_bins) / count
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return pd.DataFrame({"lower": edges[:-1], "upper": edges[1:], "confidence": mean_conf,
                         "accuracy": acc, "count": count})


def sensitivity_at_specificity(y_binary, scores, specificity: float = 0.80) -> float:
    """The highest sensitivity among ROC points with specificity >= the target.

    NaN when y_binary has no positives or no negatives.
    """
    y = np.asarray(y_binary)
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"y_binary has shape {y.shape} but scores has shape {s.shape}")
    if not np.isfinite(s).all():
        raise ValueError("scores contain NaN or infinite values")
    if not np.isin(y, [0, 1]).all():
        raise ValueError("y_binary must hold only 0/1 (or False/True)")
    if not 0.0 <= specificity <= 1.0:
        raise ValueError(f"specificity must be in [0, 1], got {specificity}")
    return float(_weighted_sens_at_spec(np.ones((1, len(s))), y.astype(bool), s, specificity)[0])


def _per_class(cm: np.ndarray, y: np.ndarray, p: np.ndarray, classes: list[str]) -> dict:
    """dx -> precision (0 if never predicted), recall (None if absent), f1, auc, support."""
    tp, support, predicted = np.diag(cm), cm.sum(axis=1), cm.sum(axis=0)
    ones = np.ones((1, len(y)))
    out = {}
    for c, dx in enumerate(classes):
        f1_den = 2 * tp[c] + (predicted[c] - tp[c]) + (support[c] - tp[c])
        out[dx] = {
            "precision": float(tp[c] / predicted[c]) if predicted[c] else 0.0,
            "recall": float(tp[c] / support[c]) if support[c] else None,
            "f1": float(2 * tp[c] / f1_den) if f1_den else None,
            "auc": _num(_weighted_auc(ones, y == c, p[:, c])[0]),
            "support": int(support[c]),
        }
    return out


def _bootstrap_cis(score, units: np.ndarray, n_bootstrap: int, seed: int, point: dict,
                   defined: dict) -> dict:
    """``ci95`` (metric -> [lo, hi]) and ``bootstrap_skipped`` of a seeded bootstrap.

    Args:
        score: image weights ``(B, n)`` -> the :func:`_weighted_scores` dict of each resample.
        units: the resampling unit of each image (:func:`resampling_units`).
        point: the :func:`_weighted_scores` dict at weight 1 (the ECE's bias correction).
        defined: metric -> whether its point estimate exists (no CI otherwise).
    """
    keys = [m if m != "ece" else "ece2" for m in CI_METRICS]
    boot = {m: [] for m in keys}
    for (W,) in bootstrap_weights([units], int(n_bootstrap), seed):
        scores = score(W)
        for m in keys:
            boot[m].append(scores[m])
    boot = {m: np.concatenate(v) if v else np.empty(0) for m, v in boot.items()}
    ci = {m: (interval(boot[m]) if defined[m] else None) for m in CI_METRICS if m != "ece"}
    ece = (interval(boot["ece2"], point["ece2"][0], point["_ece2_world"][0]) if defined["ece"]
           else None)
    ci["ece"] = None if ece is None else _root(ece).tolist()
    return {"ci95": {m: ci[m] for m in CI_METRICS},
            "bootstrap_skipped": {m: int((~np.isfinite(boot[k])).sum())
                                  for m, k in zip(CI_METRICS, keys) if defined[m]}}


def evaluate(y_true, probs, classes, *, groups=None, decision: str = "argmax", priors=None,
             thresholds=None, temperature=None, n_bootstrap: int = 1000, seed: int = 0) -> dict:
    """Evaluate one model on a test set; returns the DESIGN.md metrics dict (JSON-ready).

    Args:
        y_true, probs, classes: integer labels ``(n,)``, softmax probabilities (not logits)
            ``(n, len(classes))``, dx codes in label order (``info.classes(dataset)``).
        groups: the lesion id of each test image: the bootstrap resamples lesions (``None``:
            images, with a warning).
        decision, priors, thresholds, temperature: the model's rule (:mod:`skinlib.decision`;
            ``temperature``: the probabilities were tempered with it, and the rule sees them
            untempered, so calibration never moves a decision).
        n_bootstrap: resamples for the 95% CIs (0 = no CIs); ``seed``: theirs.

    Returns:
        ``accuracy``; ``balanced_accuracy`` (mean recall over the classes in ``y_true``, as
        scikit-learn) under the rule, and ``balanced_accuracy_argmax`` beside it; ``macro_f1``
        (over classes true or predicted); ``macro_auc`` (one-vs-rest over classes with positives
        and negatives; independent of the rule); ``per_class`` (:func:`_per_class`);
        ``confusion_matrix`` (rows = true); ``classes``; ``ece`` (debiased top-label l2, 15
        bins) and ``ece_l1`` (plug-in l1); ``mel_sensitivity_at_spec80`` (None without
        ``mel``); the rule (:func:`skinlib.decision.record`); ``ci95`` metric -> [lo, hi]
        (cluster bootstrap over lesions; resamples where a class loses its positives are
        skipped for AUC and counted in ``bootstrap_skipped``); ``bootstrap``
        (:func:`bootstrap_record`); ``n_bootstrap``; ``seed``.
    """
    from skinlib import decision as rules  # decision builds on this module's input checks

    y, p, classes = _check_inputs(y_true, probs, classes)
    units, unit = ((np.arange(len(y)), "image") if groups is None and not n_bootstrap
                   else resampling_units(groups, len(y)))
    rule = dict(priors=priors, thresholds=thresholds, temperature=temperature)
    pred = rules.apply_decision(p, decision, **rule)
    support_all = np.bincount(y, minlength=len(classes))
    auc_classes = [c for c in range(len(classes)) if 0 < support_all[c] < len(y)]
    mel = classes.index("mel") if "mel" in classes else None

    def score(W):
        return _weighted_scores(W, y, p, pred, auc_classes, mel, 15)

    scores = score(np.ones((1, len(y))))
    result = _point_result(scores, y, p, classes)
    result.update(rules.record(decision, **rule))
    defined = {m: result[m] is not None for m in CI_METRICS}
    return {**result, **_bootstrap_cis(score, units, n_bootstrap, seed, scores, defined),
            "bootstrap": bootstrap_record(unit, n_bootstrap, units.max() + 1, seed),
            "n_bootstrap": int(n_bootstrap), "seed": int(seed)}


def _point_result(scores: dict, y: np.ndarray, p: np.ndarray, classes: list[str]) -> dict:
    """The point figures of :func:`evaluate` from its weight-1 scores."""
    point = {m: _num(v[0]) for m, v in scores.items() if m != "_cm"}
    cm = scores["_cm"][0]
    return {
        "accuracy": point["accuracy"],
        "balanced_accuracy": point["balanced_accuracy"],
        "balanced_accuracy_argmax": balanced_accuracy(y, p.argmax(axis=1), len(classes)),
        "macro_f1": point["macro_f1"],
        "macro_auc": point["macro_auc"],
        "per_class": _per_class(cm, y, p, classes),
        "confusion_matrix": cm.astype(np.int64).tolist(),
        "classes": list(classes),
        "ece": point["ece"],
        "ece_l1": point["ece_l1"],
        "mel_sensitivity_at_spec80": point["mel_sensitivity_at_spec80"],
    }


def _recall_scores(W, y, probs, pred, *, auc_classes, mel, minority: list[int],
                   chosen: list[int]) -> dict:
    """:func:`_weighted_scores` plus ``minority_recall`` (mean recall over the ``minority``
    classes) and, when ``chosen`` classes are given, ``subset_recall`` (theirs)."""
    s = _weighted_scores(W, y, probs, pred, auc_classes, mel, 15)
    rec = class_recalls(s["_cm"])
    with np.errstate(invalid="ignore", divide="ignore"):
        s["minority_recall"] = (np.nanmean(rec[:, minority], axis=1) if minority
                                else np.full(len(W), np.nan))
        if chosen:
            s["subset_recall"] = np.nanmean(rec[:, chosen], axis=1)
    return s


def verdict(ci, seed_diffs, higher_is_better: bool = True) -> str:
    """``better``, ``worse`` or ``not distinguishable``: model b against model a.

    The rule (:data:`VERDICT_RULE`): a difference is called only if the 95% CI of the
    seed-averaged difference b - a excludes 0 and every seed's difference has its sign; a
    missing CI or difference gives ``not distinguishable``. With one seed only the CI decides.

    Args:
        ci: ``[lo, hi]`` of the difference b - a, or None.
        seed_diffs: the difference b - a of each seed.
        higher_is_better: False for metrics where lower is better (ECE).
    """
    d = np.asarray([np.nan if v is None else v for v in np.ravel(seed_diffs)], dtype=np.float64)
    if ci is None or d.size == 0 or not np.isfinite(d).all():
        return "not distinguishable"
    if ci[0] > 0 and (d > 0).all():
        up = True
    elif ci[1] < 0 and (d < 0).all():
        up = False
    else:
        return "not distinguishable"
    return "better" if up == higher_is_better else "worse"


def _difference(metric: str, a_vals, b_vals, boot: list, world) -> dict:
    """One metric's entry of :func:`compare` from per-seed point values and resampled
    seed-averaged differences."""
    a_vals, b_vals = np.asarray(a_vals, np.float64), np.asarray(b_vals, np.float64)
    seed_diffs = b_vals - a_vals
    diff = _num(seed_diffs.mean())
    ci = interval(np.concatenate(boot) if boot else np.empty(0), diff, world)
    finite = np.isfinite(seed_diffs).all()
    return {"a": _num(a_vals.mean()), "b": _num(b_vals.mean()), "diff": diff, "ci95": ci,
            "significant": bool(ci is not None and (ci[0] > 0 or ci[1] < 0)),
            "seed_diffs": [_num(v) for v in seed_diffs],
            "seed_sd": _num(seed_diffs.std(ddof=1)) if len(seed_diffs) > 1 and finite else None,
            "seed_range": [_num(seed_diffs.min()), _num(seed_diffs.max())] if finite else None,
            "verdict": verdict(ci, seed_diffs, metric not in LOWER_IS_BETTER)}


def _paired(names, scores_a: list, scores_b: list, unit_sets: list, n_bootstrap: int,
            seed: int) -> dict:
    """metric -> :func:`_difference` entry of a paired bootstrap over seeds.

    Every resample draws the test units once and scores every seed of both arms on it
    (``unit_sets[0]`` for a, the last for b: one set when both arms share the test set), so the
    interval is of the seed-averaged difference on the same lesions.
    """
    pa = [f(np.ones((1, len(unit_sets[0])))) for f in scores_a]
    pb = [f(np.ones((1, len(unit_sets[-1])))) for f in scores_b]
    boot = {m: [] for m in names}
    for Ws in bootstrap_weights(unit_sets, int(n_bootstrap), seed):
        sa, sb = [f(Ws[0]) for f in scores_a], [f(Ws[-1]) for f in scores_b]
        for m in names:
            boot[m].append(np.mean([b[m] - a[m] for a, b in zip(sa, sb)], axis=0))
    world = np.mean([b["_ece_world"][0] - a["_ece_world"][0] for a, b in zip(pa, pb)])
    return {m: _difference(m, [a[m][0] for a in pa], [b[m][0] for b in pb], boot[m],
                           world if m == "ece" else None) for m in names}


def seed_list(probs, name: str = "probs") -> list:
    """A model's test probabilities as a list with one entry per seed (a list of matrices, or
    one matrix)."""
    several = isinstance(probs, list | tuple) and all(np.ndim(p) == 2 for p in probs)
    out = list(probs) if several else [probs]
    if not out:
        raise ValueError(f"{name} is an empty list: pass one probability matrix per seed")
    return out


def _per_seed(value, repeats: int, name: str, vector: bool) -> list:
    """A rule parameter per seed: one value for all seeds, or a list with one per seed."""
    per_seed = isinstance(value, list | tuple) and (
        not vector or all(v is None or np.ndim(v) == 1 for v in value))
    if not per_seed:
        return [value] * repeats
    if len(value) != repeats:
        raise ValueError(f"{name} has {len(value)} entries for {repeats} seeds: pass one value, "
                         f"or one per seed")
    return list(value)


def _set_keywords(y: np.ndarray, classes: list[str], chosen: list[int]) -> dict:
    """The :func:`_recall_scores` keywords of one test set."""
    support = np.bincount(y, minlength=len(classes))
    majority = int(support.argmax())
    return dict(auc_classes=[c for c in range(len(classes)) if 0 < support[c] < len(y)],
                mel=classes.index("mel") if "mel" in classes else None,
                minority=[c for c in range(len(classes)) if c != majority and support[c] > 0],
                chosen=chosen)


def _arm(y, probs_list, classes, kw, rule: dict) -> list:
    """One scoring function (weights -> :func:`_recall_scores` dict) per seed of one model.

    ``rule``: ``decision``, ``priors`` and the ``thresholds`` and ``temperature``, each one
    value or one per seed.
    """
    from skinlib import decision as rules  # decision builds on this module's input checks

    n = len(probs_list)
    out = []
    for probs, th, t in zip(probs_list, _per_seed(rule["thresholds"], n, "thresholds", True),
                            _per_seed(rule["temperature"], n, "temperature", False)):
        _, p, _ = _check_inputs(y, probs, classes)
        pred = rules.apply_decision(p, rule["decision"], priors=rule["priors"], thresholds=th,
                                    temperature=t)
        out.append(functools.partial(_recall_scores, y=y, probs=p, pred=pred, **kw))
    return out


def _test_sets(classes: list[str], y_true, groups, y_true_b, groups_b, subset):
    """Labels of both arms' test sets, their resampling units (one set, or two when b is
    scored on another test set) and the ``subset`` classes present in both."""
    y_a = check_labels(y_true, len(classes))
    y_b = y_a if y_true_b is None else check_labels(y_true_b, len(classes), "y_true_b")
    units = [resampling_units(groups, len(y_a))]
    units += [] if y_true_b is None else [resampling_units(groups_b, len(y_b), "groups_b")]
    support = np.minimum(np.bincount(y_a, minlength=len(classes)),
                         np.bincount(y_b, minlength=len(classes)))
    chosen = [classes.index(c) for c in subset or () if c in classes and support[classes.index(c)]]
    if subset is not None and not chosen:
        raise ValueError(f"none of the classes {list(subset)} occurs in y_true")
    return y_a, y_b, units, chosen


def compare(y_true, probs_a, probs_b, classes, *, groups=None, y_true_b=None, groups_b=None,
            decision_a: str = "argmax", decision_b: str = "argmax", priors=None,
            thresholds_a=None, thresholds_b=None, temperature_a=None, temperature_b=None,
            n_bootstrap: int = 1000, seed: int = 0, subset=None,
            names: tuple[str, str] | None = None, priors_b=None) -> dict:
    """Paired lesion-level bootstrap comparison of two models, over one or several seeds.

    Every resample draws the test lesions once and scores both models, every seed, on them: the
    CI is of the seed-averaged *difference* b - a (seed r of b paired with seed r of a).

    Args:
        probs_a, probs_b: test probabilities, or lists of them (one per seed, equally many).
        groups: lesion id of each test image (``None``: images are resampled, with a warning).
        y_true_b, groups_b: when b is scored on *another* test set (the same model on a second
            split), its labels and lesions, resampled independently of a's.
        decision_*, priors, thresholds_*, temperature_*: each model's rule (:func:`evaluate`);
            thresholds, temperatures may be lists (one per seed); ``priors_b``: b's own priors.
        names: the two models' names, recorded as ``a`` and ``b`` (what reports print).

    Returns:
        metric -> ``a``, ``b`` (seed means), ``diff``, ``ci95``, ``significant`` (CI excludes
        0), ``seed_diffs``, ``seed_sd``, ``seed_range``, ``verdict`` (:func:`verdict`), for
        accuracy, balanced_accuracy, macro_auc, macro_f1, ece, minority_recall (all classes
        but the most frequent), mel_sensitivity_at_spec80 (with ``mel``), subset_recall (with
        ``subset``: mean recall over those classes, named); plus ``repeats``, ``bootstrap``,
        ``n_bootstrap``, ``seed``, ``verdict_rule`` and, with ``names``, ``a`` and ``b``.
    """
    named = {"a": str(names[0]), "b": str(names[1])} if names else {}
    seeds = {"a": seed_list(probs_a, "probs_a"), "b": seed_list(probs_b, "probs_b")}
    if len(seeds["a"]) != len(seeds["b"]):
        raise ValueError(f"probs_a has {len(seeds['a'])} seeds but probs_b {len(seeds['b'])}: "
                         f"compare seed r with seed r (pass the first min of both)")
    classes = [str(c) for c in classes]
    y_a, y_b, units, chosen = _test_sets(classes, y_true, groups, y_true_b, groups_b, subset)
    arms = [_arm(y, seeds[k], classes, _set_keywords(y, classes, chosen), rule)
            for k, y, rule in (("a", y_a, dict(decision=decision_a, priors=priors,
                                                thresholds=thresholds_a, temperature=temperature_a)),
                               ("b", y_b, dict(decision=decision_b,
                                                priors=priors if priors_b is None else priors_b,
                                                thresholds=thresholds_b, temperature=temperature_b)))]
    names = ["accuracy", "balanced_accuracy", "macro_auc", "macro_f1", "ece", "minority_recall"]
    names += ["mel_sensitivity_at_spec80"] if "mel" in classes else []
    names += ["subset_recall"] if chosen else []
    out = _paired(names, arms[0], arms[1], [u for u, _ in units], n_bootstrap, seed)
    if chosen:
        out["subset_recall"]["classes"] = [classes[c] for c in chosen]
    unit = "lesion" if all(kind == "lesion" for _, kind in units) else "image"
    return {**named, **out, "repeats": len(seeds["a"]), "n_bootstrap": int(n_bootstrap), "seed": int(seed),
            "bootstrap": bootstrap_record(unit, n_bootstrap, sum(u.max() + 1 for u, _ in units),
                                          seed), "verdict_rule": VERDICT_RULE}


# --------------------------------------------------------------------------------------------
# JSON
# --------------------------------------------------------------------------------------------

def result_json(result: dict, **meta) -> dict:
    """An :func:`evaluate` dict merged with the run's metadata (DESIGN.md metrics JSON).

    Raises:
        ValueError: a required metadata key (model, profile, data, split, image_size, n_train,
            n_test, train_seconds) is missing, or ``result`` is not an evaluate() dict.
    """
    missing = [k for k in META_KEYS if k not in meta]
    if missing:
        raise ValueError(f"result_json is missing metadata {missing}; pass all of {list(META_KEYS)}"
                         f" (use None for what does not apply, e.g. train_seconds=None)")
    absent = [k for k in ("accuracy", "balanced_accuracy", "macro_auc", "per_class", "classes")
              if k not in result]
    if absent:
        raise ValueError(f"result lacks {absent}: pass the dict that metrics.evaluate() returned")
    return json_types({**result, **meta})


def most_confused(result: dict) -> tuple[str, str, float]:
    """The largest off-diagonal cell of an ``evaluate`` dict's row-normalised confusion matrix:
    ``(true class, predicted class, share of the true class's images)``."""
    cm = np.asarray(result["confusion_matrix"], dtype=float)
    rows = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    np.fill_diagonal(rows, -1)
    i, j = np.unravel_index(int(np.argmax(rows)), rows.shape)
    return result["classes"][i], result["classes"][j], float(rows[i, j])
