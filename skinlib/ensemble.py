"""Bayesian model averaging and temperature scaling of the K fold models (notebook 05).

The fold models are trained by :mod:`skinlib.training.kfold`, which holds out the validation
split from every one of them, so it is the held-out set they all share: the BMA weights and
the temperature are fitted on it, and the test split is touched once at the end.

**Bayesian model averaging.** With a uniform prior over the K fold models M_k and held-out data
D = {(x_i, y_i)}, i = 1..n,

    p(M_k | D) ∝ p(D | M_k) = exp( sum_i log p(y_i | x_i, M_k) ),
    p(y | x, D) = sum_k w_k p(y | x, M_k),   w_k = p(M_k | D).

**Tempering.** Log-likelihoods grow linearly with n: two fold models whose mean log-likelihood
differs by 0.05 nats per image differ by 50 nats over 1,000 images, a likelihood ratio of e^50,
so the raw posterior puts all the weight on one model. That is BMA's known behaviour when no
candidate is the true model (the fold models are near-identical networks trained on
overlapping data): it selects instead of averaging, and the choice follows sampling noise in
the validation split. We therefore use a tempered (power) likelihood,
w_k ∝ exp(τ · sum_i log p(y_i | x_i, M_k)) with τ = 1/n (``tempering="per_image"``): the
weights then follow each model's per-image (geometric-mean) predictive likelihood, do not
depend on the size of the validation split, and still favour the clearly better model.
``tempering="none"`` (τ = 1) gives textbook BMA; a float sets τ directly.
"""

from __future__ import annotations

import numpy as np
import pandas as pd



# --------------------------------------------------------------------------------------------
# out-of-fold predictions (the folds are trained by skinlib.training.kfold)
# --------------------------------------------------------------------------------------------

def oof_table(folds: list[dict], classes: list[str]) -> pd.DataFrame:
    """Out-of-fold predictions of every fold model on its own held-out fold, one row per
    image (``image_id``, ``label``, ``fold``, one probability column per class)."""
    parts = []
    for f in folds:
        part = f["heldout"].copy()
        part["fold"] = f["fold"]
        part[list(classes)] = np.asarray(f["oof"])
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


# --------------------------------------------------------------------------------------------
# Bayesian model averaging
# --------------------------------------------------------------------------------------------

def log_likelihood(y_true, probs, eps: float = 1e-12) -> float:
    """sum_i log p(y_i | x_i) of a model's predictive probabilities (natural log)."""
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(y_true).astype(int)
    if p.ndim != 2 or len(p) != len(y):
        raise ValueError(f"probs has shape {p.shape} but y_true has {len(y)} labels")
    return float(np.log(np.clip(p[np.arange(len(y)), y], eps, 1.0)).sum())


def tempering_factor(tempering, n: int) -> float:
    """τ of the tempered likelihood: ``per_image`` -> 1/n, ``none`` -> 1, a number -> itself."""
    if tempering == "per_image":
        return 1.0 / max(int(n), 1)
    if tempering == "none":
        return 1.0
    if isinstance(tempering, int | float) and not isinstance(tempering, bool) and tempering > 0:
        return float(tempering)
    raise ValueError(f"tempering={tempering!r}: use 'per_image', 'none' or a positive number")


def bma_weights(log_liks, n: int, tempering="per_image", prior=None) -> np.ndarray:
    """Posterior model weights w_k ∝ prior_k · exp(τ · LL_k) (see the module docstring).

    Args:
        log_liks: LL_k = sum_i log p(y_i | x_i, M_k) of each model on the same n images.
        n: number of held-out images the log-likelihoods sum over.
        tempering: ``per_image`` (τ = 1/n, the default), ``none`` (τ = 1) or τ itself.
        prior: prior model probabilities (default uniform).

    Returns:
        Non-negative weights summing to 1 (computed with log-sum-exp).
    """
    ll = np.asarray(log_liks, dtype=np.float64).ravel()
    if ll.size == 0 or not np.isfinite(ll).all():
        raise ValueError(f"log_liks must be finite and non-empty, got {ll}")
    prior = np.full(ll.size, 1.0 / ll.size) if prior is None else np.asarray(prior, float)
    if prior.shape != ll.shape or (prior <= 0).any():
        raise ValueError(f"prior must hold {ll.size} positive numbers, got {prior}")
    logw = np.log(prior) + tempering_factor(tempering, n) * ll
    w = np.exp(logw - logw.max())
    return w / w.sum()


def average(probs_list, weights=None) -> np.ndarray:
    """sum_k w_k p_k of several models' probabilities (uniform weights by default)."""
    stack = np.stack([np.asarray(p, dtype=np.float64) for p in probs_list])
    w = (np.full(len(stack), 1.0 / len(stack)) if weights is None
         else np.asarray(weights, dtype=np.float64))
    if w.shape != (len(stack),) or (w < 0).any() or not np.isclose(w.sum(), 1.0):
        raise ValueError(f"weights must be {len(stack)} non-negative numbers summing to 1, got {w}")
    out = np.tensordot(w, stack, axes=1)
    return out / out.sum(axis=1, keepdims=True)


def bma_record(folds: list[dict], y_val, tempering="per_image") -> dict:
    """Weights of the fold models from their likelihood on the shared validation split."""
    if any(f["val"] is None for f in folds):
        raise ValueError("the fold models have no validation predictions (holdout='none'): "
                         "train with holdout='val' so they share held-out data")
    n = len(y_val)
    ll = [log_likelihood(y_val, f["val"]) for f in folds]
    w = bma_weights(ll, n, tempering)
    raw = bma_weights(ll, n, "none")
    return {"models": [f["name"] for f in folds], "weights": w.tolist(),
            "weights_untempered": raw.tolist(), "log_likelihood": ll,
            "mean_log_likelihood": [v / n for v in ll], "n_images": n,
            "held_out_data": "validation split (seen by no fold model)",
            "tempering": tempering, "tau": tempering_factor(tempering, n),
            "formula": "w_k ∝ exp(tau * sum_i log p(y_i | x_i, M_k)), uniform prior"}


# --------------------------------------------------------------------------------------------
# temperature scaling
# --------------------------------------------------------------------------------------------
# Calibration never changes a decision: a metrics JSON of tempered probabilities records the
# temperature, and the decision rule sees the probabilities untempered
# (skinlib.decision.apply_decision(..., temperature=T)); under prior correction argmax(log p / T -
# log priors) would otherwise differ from argmax(log p - log priors).

def apply_temperature(probs, temperature: float, eps: float = 1e-12) -> np.ndarray:
    """softmax(log p / T): T > 1 softens over-confident probabilities, T < 1 sharpens."""
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    z = np.log(np.clip(np.asarray(probs, dtype=np.float64), eps, 1.0)) / float(temperature)
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def fit_temperature(y_true, probs, bounds: tuple[float, float] = (0.05, 20.0)) -> float:
    """The T minimising the negative log-likelihood of ``apply_temperature(probs, T)``
    (fit it on validation data, never on test)."""
    from scipy.optimize import minimize_scalar

    y = np.asarray(y_true).astype(int)

    def nll(log_t):
        return -log_likelihood(y, apply_temperature(probs, float(np.exp(log_t))))

    res = minimize_scalar(nll, bounds=tuple(np.log(bounds)), method="bounded",
                          options={"xatol": 1e-4})
    return float(np.exp(res.x))


def bma_seeds(fold_sets: list[list[dict]], y_val, tempering="per_image") -> dict[str, list]:
    """BMA of each repeat's fold models (one list of :func:`skinlib.training.kfold.train_folds`
    results per seed), before and after temperature scaling.

    Returns:
        ``{"bma": test probabilities, "bma_ts": the same tempered, "temperature": T}``, lists
        with one entry per repeat; each T is fitted on the validation split.
    """
    out: dict[str, list] = {"bma": [], "bma_ts": [], "temperature": []}
    for folds in fold_sets:
        w = bma_record(folds, y_val, tempering)["weights"]
        test = average([f["test"] for f in folds], w)
        t = fit_temperature(y_val, average([f["val"] for f in folds], w))
        out["bma"].append(test)
        out["bma_ts"].append(apply_temperature(test, t))
        out["temperature"].append(t)
    return out
