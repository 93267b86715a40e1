"""Lesion-level (cluster) bootstrap of the figures a confusion matrix gives: recall per class,
accuracy under any class mix, balanced accuracy, and paired differences of two models.

Images of one lesion are near-duplicates, so a CI that resamples images is too narrow. Here a
resample draws *lesions* with replacement and gives each image the draw count of its lesion as
its weight (the cluster bootstrap); every figure is computed from weighted confusion matrices,
vectorised over resamples. Notebooks 08 and 10 use it for their lesion-level CIs; the shared
evaluator (:func:`skinlib.metrics.evaluate` / ``compare``) resamples images until it takes
``groups=`` itself.

No TensorFlow here: inputs are NumPy arrays of labels, predicted labels and lesion ids.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

_CHUNK = 250  # resamples at once (memory: chunk x images floats)


def lesion_draws(groups, n_bootstrap: int, seed: int):
    """Yield ``(chunk, n)`` image weights of a seeded cluster bootstrap over ``groups``.

    Each resample draws as many lesions as there are, with replacement; an image's weight is
    how often its lesion was drawn, so all images of a lesion stay together.
    """
    groups = pd.Series(np.asarray(groups, dtype=object))
    if groups.isna().any() or (groups.astype(str).str.strip() == "").any():
        raise ValueError("groups hold missing lesion ids: give every image its lesion_id "
                         "(an image without one is its own lesion: use its image_id)")
    codes, uniques = pd.factorize(groups)
    n_groups = len(uniques)
    rng = np.random.default_rng(seed)
    done = 0
    while done < int(n_bootstrap):
        b = min(_CHUNK, int(n_bootstrap) - done)
        draws = rng.integers(0, n_groups, size=(b, n_groups)) + (np.arange(b) * n_groups)[:, None]
        counts = np.bincount(draws.ravel(), minlength=b * n_groups).reshape(b, n_groups)
        yield counts[:, codes].astype(np.float64)
        done += b


def weighted_confusion(W, y, pred, n_classes: int) -> np.ndarray:
    """Confusion matrices ``(B, true, predicted)`` for each row of image weights ``W`` ``(B, n)``."""
    y, pred = np.asarray(y, dtype=np.int64), np.asarray(pred, dtype=np.int64)
    if y.shape != pred.shape or np.shape(W)[-1] != len(y):
        raise ValueError(f"y ({y.shape}), pred ({pred.shape}) and the weights "
                         f"({np.shape(W)}) must describe the same images")
    k = int(n_classes)
    cells = np.zeros((len(y), k * k))
    cells[np.arange(len(y)), y * k + pred] = 1.0
    return (np.atleast_2d(W) @ cells).reshape(-1, k, k)


def recalls(cm: np.ndarray) -> np.ndarray:
    """Recall of each class ``(B, k)`` from confusion matrices; NaN where a class has no image."""
    support = cm.sum(axis=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diagonal(cm, axis1=1, axis2=2) / support, np.nan)


def mix_accuracy(cm: np.ndarray, mix) -> np.ndarray:
    """Accuracy if the classes came in proportions ``mix``: ``sum_c mix_c * recall_c``.

    ``mix`` is renormalised over its nonzero entries; those classes must have images.
    """
    mix = np.asarray(mix, dtype=np.float64)
    keep = mix > 0
    return (recalls(cm)[:, keep] * (mix[keep] / mix[keep].sum())).sum(axis=1)


def own_accuracy(cm: np.ndarray, kept) -> np.ndarray:
    """Plain accuracy over the images whose true class is in ``kept`` (the set's own mix)."""
    sub = cm[:, kept, :]
    return np.diagonal(cm, axis1=1, axis2=2)[:, kept].sum(axis=1) / sub.sum(axis=(1, 2))


def balanced(cm: np.ndarray, kept) -> np.ndarray:
    """Balanced accuracy (mean recall) over the classes ``kept`` that have images (NaN if none).

    As :func:`skinlib.metrics.evaluate`: a resample that lost every image of a class averages
    over the classes it still has.
    """
    r = recalls(cm)[:, kept]
    with np.errstate(invalid="ignore"):
        return np.where(np.isfinite(r).any(axis=1),
                        np.nansum(r, axis=1) / np.maximum(np.isfinite(r).sum(axis=1), 1), np.nan)


def interval(values) -> list | None:
    """Percentile 95% interval of the finite values (None if there are none)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    return None if v.size == 0 else [float(x) for x in np.percentile(v, [2.5, 97.5])]


def summarise(point: float, draws) -> dict:
    """``{"value", "ci95", "excludes_0"}`` of one figure and its bootstrap draws."""
    ci = interval(draws)
    return {"value": float(point), "ci95": ci,
            "excludes_0": bool(ci is not None and (ci[0] > 0 or ci[1] < 0))}


def paired_difference(y, pred_a, pred_b, groups, classes, *, n_bootstrap: int,
                      seed: int) -> dict:
    """Lesion-level paired bootstrap of model b minus model a on the same test images.

    Both models are scored on the same lesion resamples, so each CI is of the difference.

    Returns:
        ``balanced_accuracy`` and ``accuracy`` as ``{"a", "b", "diff", "ci95", "significant"}``
        (balanced accuracy over the classes present in ``y``), ``recall`` (dx -> the same for
        each present class), ``n_bootstrap``, ``seed``, ``unit`` ("lesion"), ``n_lesions``.
    """
    y = np.asarray(y, dtype=np.int64)
    k = len(classes)
    kept = np.flatnonzero(np.bincount(y, minlength=k) > 0)

    def figures(W):
        ca, cb = weighted_confusion(W, y, pred_a, k), weighted_confusion(W, y, pred_b, k)
        ra, rb = recalls(ca), recalls(cb)
        return {"balanced_accuracy": (balanced(ca, kept), balanced(cb, kept)),
                "accuracy": (own_accuracy(ca, kept), own_accuracy(cb, kept)),
                **{classes[c]: (ra[:, c], rb[:, c]) for c in kept}}

    point = figures(np.ones((1, len(y))))
    diffs = {m: [] for m in point}
    for W in lesion_draws(groups, n_bootstrap, seed):
        for m, (a, b) in figures(W).items():
            diffs[m].append(b - a)
    out = {}
    for m, (a, b) in point.items():
        s = summarise(b[0] - a[0], np.concatenate(diffs[m]) if diffs[m] else [])
        out[m] = {"a": float(a[0]), "b": float(b[0]), "diff": s["value"], "ci95": s["ci95"],
                  "significant": s["excludes_0"]}
    return {"balanced_accuracy": out.pop("balanced_accuracy"), "accuracy": out.pop("accuracy"),
            "recall": out, "n_bootstrap": int(n_bootstrap), "seed": int(seed), "unit": "lesion",
            "n_lesions": int(pd.Series(np.asarray(groups, dtype=object)).nunique())}
