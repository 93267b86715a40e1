"""The decision rule: how class probabilities become one predicted class.

A model's rule is part of the model (DESIGN.md): ``argmax``; ``prior_corrected``, the
probabilities divided by the class priors the model was *trained under* before argmax (needs no
tuning; :func:`training_priors`: the training split's frequencies, or uniform when class weights
or class-balanced re-sampling already made every class equally likely in training); or
``thresholds``, per-class multipliers fitted on the *validation* split. The test split never
chooses anything. A metrics JSON records the rule as ``decision`` plus its ``priors`` or
``thresholds`` (:func:`record`).

No TensorFlow here: inputs are NumPy arrays of labels and class probabilities.
"""

from __future__ import annotations

import numpy as np

from skinlib import metrics

DECISIONS = ("argmax", "prior_corrected", "thresholds")


def priors(labels, n_classes: int) -> np.ndarray:
    """Class frequencies of a label vector (sums to 1); of the training split's labels, they
    are the priors of the ``prior_corrected`` rule."""
    y = metrics.check_labels(labels, n_classes, "labels")
    return np.bincount(y, minlength=n_classes) / len(y)


BALANCED = ("weights", "resample")  # balancing that trains under a uniform class prior


def training_priors(labels, n_classes: int, balance: str = "none") -> np.ndarray:
    """The class priors a model was trained under, which ``prior_corrected`` divides by.

    Without balancing they are the training labels' frequencies. Class weights inversely
    proportional to the frequencies (``weights``) and class-balanced re-sampling (``resample``)
    make every class equally likely in the loss, so the model learnt under a uniform prior:
    dividing by the frequencies again would correct the imbalance twice. Uniform priors make
    ``prior_corrected`` decide as argmax for such a model: the Bayes decision when every class
    is equally likely a priori, whatever the balancing.
    """
    y = priors(labels, n_classes)
    if balance in BALANCED:
        return np.full(n_classes, 1.0 / n_classes)
    if balance != "none":
        raise ValueError(f"balance={balance!r}: use none or one of {BALANCED}")
    return y


def _positive_vector(v, n_classes: int, name: str) -> np.ndarray:
    """A strictly positive, finite vector of length n_classes (priors or thresholds)."""
    if v is None:
        raise ValueError(f"this decision rule needs {name}; pass {name}=...")
    v = np.asarray(v, dtype=np.float64).ravel()
    if v.shape != (n_classes,):
        raise ValueError(f"{name} has {v.size} entries but there are {n_classes} classes")
    if not np.isfinite(v).all() or (v <= 0).any():
        raise ValueError(f"{name} must be finite and > 0, got {np.round(v, 4).tolist()}; a class "
                         f"missing from training gets prior 0 - drop it or smooth the priors")
    return v


def untempered(probs, temperature: float) -> np.ndarray:
    """The probabilities before temperature scaling: softmax(T * log p_T) undoes
    softmax(log p / T), so a rule applied to them decides as the untempered model did."""
    from skinlib.ensemble import apply_temperature

    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    return apply_temperature(probs, 1.0 / float(temperature), eps=np.finfo(np.float64).tiny)


def apply_decision(probs, decision: str = "argmax", *, priors=None, thresholds=None,
                   temperature=None) -> np.ndarray:
    """Predicted labels under a decision rule.

    Args:
        probs: ``(n, n_classes)`` class probabilities.
        decision: ``argmax``; ``prior_corrected`` = argmax(probs / priors), with the training
            class frequencies as priors; ``thresholds`` = argmax(probs * thresholds), with per-class
            multipliers fitted on validation by :func:`fit_thresholds`.
        temperature: the temperature ``probs`` were scaled with (:mod:`skinlib.ensemble`): the
            rule is applied to the untempered probabilities, so calibration never changes a
            decision (argmax(log p / T - log priors) is not argmax(log p - log priors)).
    """
    p = metrics.check_probs(probs)
    if temperature is not None:
        p = untempered(p, temperature)
    k = p.shape[1]
    if decision == "argmax":
        return p.argmax(axis=1)
    if decision == "prior_corrected":
        return (p / _positive_vector(priors, k, "priors")).argmax(axis=1)
    if decision == "thresholds":
        return (p * _positive_vector(thresholds, k, "thresholds")).argmax(axis=1)
    raise ValueError(f"unknown decision {decision!r}: use one of {DECISIONS}")


def fit_thresholds(y_val, probs_val, n_classes: int, *, iters: int = 3) -> np.ndarray:
    """Per-class multipliers that maximise validation balanced accuracy.

    Coordinate ascent over a log grid, starting from 1 / (validation class priors), or from plain
    argmax if that is better; a step is taken only on strict improvement, so the result is
    deterministic and never worse on validation than argmax. Fit on validation, never on test.
    """
    p = metrics.check_probs(probs_val, n_classes, "probs_val")
    y = metrics.check_labels(y_val, n_classes, "y_val")
    if len(y) != len(p):
        raise ValueError(f"y_val has {len(y)} labels but probs_val has {len(p)} rows")

    def score(t):
        return metrics.balanced_accuracy(y, (p * t).argmax(axis=1), n_classes)

    val_priors = np.maximum(np.bincount(y, minlength=n_classes) / len(y), 1.0 / len(y))
    candidates = [np.ones(n_classes), 1.0 / val_priors]
    scores = [score(t) for t in candidates]
    best = int(np.argmax(scores))
    t, best_score = candidates[best] / candidates[best].max(), scores[best]
    grid = np.logspace(-2, 2, 41)
    for _ in range(iters):
        improved = False
        for c in range(n_classes):
            for factor in grid:
                trial = t.copy()
                trial[c] = t[c] * factor
                s = score(trial)
                if s > best_score + 1e-12:
                    t, best_score, improved = trial, s, True
        if not improved:
            break
    return t / t.max()


def rule_params(decision: str, *, train_priors=None, y_val=None, probs_val=None,
                temperature=None) -> dict:
    """Keyword arguments of :func:`apply_decision` (and :func:`skinlib.metrics.evaluate`) that
    implement a rule: ``priors`` for ``prior_corrected``, thresholds fitted on the validation
    labels and probabilities for ``thresholds`` (on the untempered ones when the model's
    probabilities were scaled by ``temperature``, which is passed on)."""
    out = {"decision": decision} if temperature is None else {"decision": decision,
                                                              "temperature": float(temperature)}
    if decision == "argmax":
        return out
    if decision == "prior_corrected":
        if train_priors is None:
            raise ValueError("decision='prior_corrected' needs the training priors "
                             "(train_priors=session.priors())")
        return {**out, "priors": np.asarray(train_priors)}
    if decision == "thresholds":
        if probs_val is None or y_val is None:
            raise ValueError("decision='thresholds' needs validation labels and probabilities "
                             "(y_val=..., probs_val=...)")
        probs_val = np.asarray(probs_val)
        if temperature is not None:
            probs_val = untempered(probs_val, temperature)
        return {**out, "thresholds": fit_thresholds(y_val, probs_val, probs_val.shape[1])}
    raise ValueError(f"decision={decision!r}: use one of {', '.join(DECISIONS)}")


def comparison_rule(decision: str) -> str:
    """The rule paired comparisons use: a profile's ``decision``, or ``argmax`` for
    ``thresholds`` (thresholds would need every compared model's validation probabilities)."""
    if decision not in DECISIONS:
        raise ValueError(f"decision={decision!r}: use one of {', '.join(DECISIONS)}")
    return decision if decision in ("argmax", "prior_corrected") else "argmax"


def record(decision: str, *, priors=None, thresholds=None, temperature=None) -> dict:
    """How a metrics JSON records a rule: ``decision``, plus ``priors`` (prior_corrected) or
    ``thresholds`` (thresholds) as plain floats, and the ``temperature`` the probabilities were
    scaled with (the rule saw them untempered)."""
    out = {"decision": decision}
    if decision == "prior_corrected":
        out["priors"] = [float(v) for v in np.ravel(priors)]
    if decision == "thresholds":
        out["thresholds"] = [float(v) for v in np.ravel(thresholds)]
    if temperature is not None:
        out["temperature"] = float(temperature)
    return out


def apply_recorded(probs, rec: dict) -> np.ndarray:
    """Predicted labels under the rule a metrics dict records (:func:`record`: ``decision``
    plus its ``priors`` or ``thresholds``)."""
    return apply_decision(probs, rec.get("decision", "argmax"), priors=rec.get("priors"),
                          thresholds=rec.get("thresholds"))
