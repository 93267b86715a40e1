"""One evaluator every model goes through: figures, bootstrap CIs, paired comparisons.

Every metric is computed from per-image *weights*: the point estimate uses weight 1 for each
test image, a bootstrap resample uses how often each image was drawn. So the point figures and
their confidence intervals come from the same code, vectorised over resamples (1000 resamples
of 1,500 images x 7 classes take well under a second).

No TensorFlow here: inputs are NumPy arrays of labels and class probabilities.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from skinlib.rundir import json_types

META_KEYS = ("model", "profile", "data", "split", "image_size", "n_train", "n_test",
             "train_seconds")
CI_METRICS = ("accuracy", "balanced_accuracy", "macro_auc", "macro_f1",
              "mel_sensitivity_at_spec80", "ece")
_CHUNK = 250  # bootstrap resamples evaluated at once (bounds memory: chunk x n floats)


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


def _weighted_ece(W, probs, y, n_bins: int) -> np.ndarray:
    """Top-label expected calibration error per weight row."""
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == y).astype(np.float64)
    onehot = np.eye(n_bins)[_bin_index(conf, n_bins)]  # (n, bins)
    count = W @ onehot
    gap = W @ (onehot * (correct - conf)[:, None])
    return np.abs(gap).sum(axis=1) / count.sum(axis=1)


def _weighted_scores(W, y, probs, pred, auc_classes, mel, n_bins) -> dict:
    """Every evaluated figure for each row of image weights W (shape (B, n)).

    These kernels are hand-written rather than scikit-learn's per-sample-weight metrics so that
    the point estimate (W = ones) and all bootstrap resamples come from one vectorised pass.
    """
    k = probs.shape[1]
    cm = (W @ np.eye(k * k)[y * k + pred]).reshape(-1, k, k)  # (B, true, pred)
    tp = np.diagonal(cm, axis1=1, axis2=2)
    support = cm.sum(axis=2)
    predicted = cm.sum(axis=1)
    total = support.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(support > 0, tp / support, np.nan)
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
    out["ece"] = _weighted_ece(W, probs, y, n_bins)
    out["mel_sensitivity_at_spec80"] = (
        _weighted_sens_at_spec(W, y == mel, probs[:, mel], 0.80) if mel is not None
        else np.full(len(W), np.nan))
    out["_cm"] = cm
    return out


def _bootstrap_weights(n: int, n_bootstrap: int, seed: int):
    """Yield (chunk, n) draw-count matrices of a seeded percentile bootstrap over images."""
    rng = np.random.default_rng(seed)
    done = 0
    while done < n_bootstrap:
        b = min(_CHUNK, n_bootstrap - done)
        idx = rng.integers(0, n, size=(b, n)) + (np.arange(b) * n)[:, None]
        yield np.bincount(idx.ravel(), minlength=b * n).reshape(b, n).astype(np.float64)
        done += b


def _ci(values: np.ndarray) -> list | None:
    """Percentile 95% interval of the finite values; None if there are none."""
    v = values[np.isfinite(values)]
    if v.size == 0:
        return None
    lo, hi = np.percentile(v, [2.5, 97.5])
    return [float(lo), float(hi)]


def _num(x) -> float | None:
    """A JSON-ready float (NaN/inf -> None)."""
    x = float(x)
    return x if math.isfinite(x) else None


# --------------------------------------------------------------------------------------------
# public metrics
# --------------------------------------------------------------------------------------------

def expected_calibration_error(y_true, probs, n_bins: int = 15) -> float:
    """Top-label ECE with equal-width confidence bins: sum over bins of |accuracy - confidence|
    weighted by the bin's share of images."""
    p = check_probs(probs)
    y = check_labels(y_true, p.shape[1])
    return float(_weighted_ece(np.ones((1, len(y))), p, y, n_bins)[0])


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


def _bootstrap_cis(score, n: int, n_bootstrap: int, seed: int, defined: dict) -> dict:
    """``ci95``, ``n_bootstrap``, ``bootstrap_skipped`` and ``seed`` of a seeded bootstrap.

    Args:
        score: image weights ``(B, n)`` -> the :func:`_weighted_scores` dict of each resample.
        defined: metric -> whether its point estimate exists (no CI otherwise).
    """
    boot = {m: [] for m in CI_METRICS}
    for W in _bootstrap_weights(n, int(n_bootstrap), seed):
        scores = score(W)
        for m in CI_METRICS:
            boot[m].append(scores[m])
    boot = {m: np.concatenate(v) if v else np.empty(0) for m, v in boot.items()}
    return {"ci95": {m: (_ci(boot[m]) if defined[m] else None) for m in CI_METRICS},
            "n_bootstrap": int(n_bootstrap),
            "bootstrap_skipped": {m: int((~np.isfinite(boot[m])).sum()) for m in CI_METRICS
                                  if defined[m]},
            "seed": int(seed)}


def evaluate(y_true, probs, classes, *, decision: str = "argmax", priors=None, thresholds=None,
             n_bootstrap: int = 1000, seed: int = 0) -> dict:
    """Evaluate one model on a test set; returns the DESIGN.md metrics dict (JSON-ready).

    Args:
        y_true, probs, classes: integer labels ``(n,)``, softmax probabilities (not logits)
            ``(n, len(classes))``, dx codes in label order (``info.classes(dataset)``).
        decision, priors, thresholds: the model's rule (:mod:`skinlib.decision`).
        n_bootstrap: resamples of the test images for the 95% CIs (0 = no CIs); ``seed``: theirs.

    Returns:
        ``accuracy``; ``balanced_accuracy`` (mean recall over the classes in ``y_true``, as
        scikit-learn) under the rule, and ``balanced_accuracy_argmax`` beside it; ``macro_f1``
        (over classes true or predicted); ``macro_auc`` (one-vs-rest over classes with positives
        and negatives; independent of the rule); ``per_class`` (:func:`_per_class`);
        ``confusion_matrix`` (rows = true); ``classes``; ``ece`` (top-label, 15 bins);
        ``mel_sensitivity_at_spec80`` (None without ``mel``); the rule
        (:func:`skinlib.decision.record`); ``ci95`` metric -> [lo, hi] (percentile bootstrap over
        test images; resamples where a class loses its positives are skipped for AUC and counted
        in ``bootstrap_skipped``); ``n_bootstrap``; ``seed``.
    """
    from skinlib import decision as rules  # decision builds on this module's input checks

    y, p, classes = _check_inputs(y_true, probs, classes)
    pred = rules.apply_decision(p, decision, priors=priors, thresholds=thresholds)
    support_all = np.bincount(y, minlength=len(classes))
    auc_classes = [c for c in range(len(classes)) if 0 < support_all[c] < len(y)]
    mel = classes.index("mel") if "mel" in classes else None

    def score(W):
        return _weighted_scores(W, y, p, pred, auc_classes, mel, 15)

    scores = score(np.ones((1, len(y))))
    point = {m: _num(v[0]) for m, v in scores.items() if m != "_cm"}
    cm = scores["_cm"][0]
    result = {
        "accuracy": point["accuracy"],
        "balanced_accuracy": point["balanced_accuracy"],
        "balanced_accuracy_argmax": balanced_accuracy(y, p.argmax(axis=1), len(classes)),
        "macro_f1": point["macro_f1"],
        "macro_auc": point["macro_auc"],
        "per_class": _per_class(cm, y, p, classes),
        "confusion_matrix": cm.astype(np.int64).tolist(),
        "classes": list(classes),
        "ece": point["ece"],
        "mel_sensitivity_at_spec80": point["mel_sensitivity_at_spec80"],
        **rules.record(decision, priors=priors, thresholds=thresholds),
    }
    defined = {m: result[m] is not None for m in CI_METRICS}
    return {**result, **_bootstrap_cis(score, len(y), n_bootstrap, seed, defined)}


def _recall_scores(W, y, probs, pred, *, auc_classes, mel, minority: list[int],
                   chosen: list[int]) -> dict:
    """:func:`_weighted_scores` plus ``minority_recall`` (mean recall over the ``minority``
    classes) and, when ``chosen`` classes are given, ``subset_recall`` (theirs)."""
    s = _weighted_scores(W, y, probs, pred, auc_classes, mel, 15)
    cm = s["_cm"]
    sup = cm.sum(axis=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        rec = np.diagonal(cm, axis1=1, axis2=2)[:, minority] / sup[:, minority]
        s["minority_recall"] = np.nanmean(rec, axis=1) if minority else np.full(len(W), np.nan)
        if chosen:
            s["subset_recall"] = np.nanmean(
                np.diagonal(cm, axis1=1, axis2=2)[:, chosen] / sup[:, chosen], axis=1)
    return s


def _paired(names, score_a, score_b, n: int, n_bootstrap: int, seed: int) -> dict:
    """metric -> ``{"a", "b", "diff", "ci95", "significant"}`` of a paired bootstrap."""
    ones = np.ones((1, n))
    point_a, point_b = score_a(ones), score_b(ones)
    diffs = {m: [] for m in names}
    for W in _bootstrap_weights(n, int(n_bootstrap), seed):
        sa, sb = score_a(W), score_b(W)
        for m in names:
            diffs[m].append(sb[m] - sa[m])
    out = {}
    for m in names:
        a, b = _num(point_a[m][0]), _num(point_b[m][0])
        ci = _ci(np.concatenate(diffs[m]) if diffs[m] else np.empty(0))
        out[m] = {"a": a, "b": b, "diff": None if a is None or b is None else b - a, "ci95": ci,
                  "significant": bool(ci is not None and (ci[0] > 0 or ci[1] < 0))}
    return out


def compare(y_true, probs_a, probs_b, classes, *, decision_a: str = "argmax",
            decision_b: str = "argmax", priors=None, thresholds_a=None, thresholds_b=None,
            n_bootstrap: int = 1000, seed: int = 0, subset=None) -> dict:
    """Paired bootstrap comparison of two models on the same test images.

    Both models are scored on the same resamples, so the CI is of the *difference* b - a.

    Returns:
        metric -> ``{"a", "b", "diff" (b - a), "ci95": [lo, hi], "significant"}`` for accuracy,
        balanced_accuracy, macro_auc, macro_f1, ece, minority_recall (mean recall over every
        class but the most frequent in y_true), mel_sensitivity_at_spec80 (when ``mel`` is a
        class) and, with ``subset``, subset_recall (mean recall over those classes, which it
        names); ``significant`` is True when the CI excludes 0. Plus ``n_bootstrap``, ``seed``.
    """
    from skinlib import decision as rules  # decision builds on this module's input checks

    y, pa, classes = _check_inputs(y_true, probs_a, classes)
    _, pb, _ = _check_inputs(y_true, probs_b, classes)
    pred_a = rules.apply_decision(pa, decision_a, priors=priors, thresholds=thresholds_a)
    pred_b = rules.apply_decision(pb, decision_b, priors=priors, thresholds=thresholds_b)
    support = np.bincount(y, minlength=len(classes))
    mel = classes.index("mel") if "mel" in classes else None
    names = ["accuracy", "balanced_accuracy", "macro_auc", "macro_f1", "ece", "minority_recall"]
    names += ["mel_sensitivity_at_spec80"] if mel is not None else []
    chosen = [classes.index(c) for c in subset or () if c in classes and support[classes.index(c)]]
    if subset is not None and not chosen:
        raise ValueError(f"none of the classes {list(subset)} occurs in y_true")
    names += ["subset_recall"] if chosen else []
    majority = int(support.argmax())
    kw = dict(auc_classes=[c for c in range(len(classes)) if 0 < support[c] < len(y)], mel=mel,
              minority=[c for c in range(len(classes)) if c != majority and support[c] > 0],
              chosen=chosen)
    out = _paired(names, lambda W: _recall_scores(W, y, pa, pred_a, **kw),
                  lambda W: _recall_scores(W, y, pb, pred_b, **kw), len(y), n_bootstrap, seed)
    if chosen:
        out["subset_recall"]["classes"] = [classes[c] for c in chosen]
    return {**out, "n_bootstrap": int(n_bootstrap), "seed": int(seed)}


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
