"""K-fold training over the lesion-grouped folds and Bayesian model averaging (notebook 05).

**Which data every model shares.** The shared split (``splits.csv``) gives every train+val
lesion a fold. Here the folds are taken over the *training* split only (``holdout="val"``):
fold model k trains on the other folds' training images and early-stops on its own held-out
fold. The validation split is never seen by any fold model, neither for gradient steps nor for
early stopping, so it is the one held-out set all K models share; the BMA weights and the
temperature are fitted on it, and the test split is touched once at the end. (Weights from
out-of-fold predictions would score each model on *different* images, so the likelihoods would
not be comparable; ``holdout="none"`` folds over train+val for a plain cross-validation, and
then only the OOF predictions are held out.)

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

from skinlib import train
from skinlib.pipeline import make_dataset, steps_per_epoch

HOLDOUTS = ("val", "none")


# --------------------------------------------------------------------------------------------
# folds
# --------------------------------------------------------------------------------------------

def fold_frames(catalog: pd.DataFrame, *, holdout: str = "val"
                ) -> list[tuple[pd.DataFrame, pd.DataFrame]]:
    """``(training rows, held-out rows)`` of each lesion-grouped fold, in fold order.

    Args:
        catalog: the session catalog (``split`` and ``fold`` columns attached).
        holdout: ``val`` folds over the training split only (the validation split stays out
            of every fold model, for BMA and temperature); ``none`` folds over train+val.
    """
    if holdout not in HOLDOUTS:
        raise ValueError(f"holdout={holdout!r}: use one of {HOLDOUTS}")
    missing = {"split", "fold", "lesion_id"} - set(catalog.columns)
    if missing:
        raise ValueError(f"the catalog lacks {sorted(missing)}: use session.start(...).catalog")
    pool = catalog[catalog["split"].isin(["train"] if holdout == "val" else ["train", "val"])]
    if "synthetic" in pool.columns and pool["synthetic"].fillna(False).any():
        raise ValueError("the fold pool holds GAN images: K-fold runs on real images only")
    if (pool["fold"] < 0).any():
        raise ValueError("some train/val rows have fold -1: re-make splits.csv (delete it)")
    folds = sorted(pool["fold"].unique())
    out = []
    for k in folds:
        held = pool[pool["fold"] == k].reset_index(drop=True)
        rest = pool[pool["fold"] != k].reset_index(drop=True)
        if len(held) == 0 or len(rest) == 0:
            raise ValueError(f"fold {k} leaves no training or no held-out images; use fewer "
                             "folds (k_folds) or more data")
        out.append((rest, held))
    return out


def _fold_history(records: list[dict]) -> tuple[pd.DataFrame, int | None]:
    """Stage 1 and stage 2 epoch logs as one frame (epochs renumbered) and the stage boundary."""
    parts, boundary, offset = [], None, 0
    for i, rec in enumerate(records):
        h = pd.DataFrame(rec.get("history") or {})
        if h.empty:
            continue
        h["epoch"] = np.arange(len(h)) + offset
        if i == 1:
            boundary = offset - 1
        offset += len(h)
        parts.append(h)
    return (pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()), boundary


def train_folds(session, build_model, *, prefix: str = "05", holdout: str = "val",
                epochs: int | None = None, finetune_epochs: int | None = None,
                finetune_lr_factor: float = 0.1, unfreeze=None, verbose: int = 2) -> list[dict]:
    """Train one model per fold (early stopping on its own held-out fold) and predict.

    Each fold's stage 1 is ``train.fit(..., name=f"{prefix}_fold{k}")`` and its optional stage 2
    (``unfreeze(model)`` then ``learning_rate * finetune_lr_factor``) ``{prefix}_fold{k}_ft``,
    so a re-run loads finished folds and a killed one resumes.

    Args:
        session: the notebook's session.
        build_model: ``() -> keras.Model`` building a fresh, uncompiled model.
        holdout: see :func:`fold_frames`.
        epochs, finetune_epochs: default the profile's ``expert_epochs`` and
            ``expert_finetune_epochs`` (0 skips stage 2).
        unfreeze: ``model -> model`` opening layers for stage 2 (default: the expert trunks).

    Returns:
        One dict per fold: ``fold``, ``name`` (the final model's training name), ``n_train``,
        ``n_heldout``, ``train_seconds``, ``epochs_run``, ``loaded``, ``history`` (DataFrame),
        ``stage_boundary``, ``heldout`` (image_id, label), ``oof``, ``val`` (``None`` when
        ``holdout="none"``) and ``test`` probabilities.
    """
    import keras

    p = session.profile
    epochs = p.expert_epochs if epochs is None else epochs
    finetune_epochs = p.expert_finetune_epochs if finetune_epochs is None else finetune_epochs
    if unfreeze is None:
        from skinlib.models.experts import set_experts_trainable as unfreeze
    size = tuple(p.image_size)
    results = []
    for k, (tr, held) in enumerate(fold_frames(session.catalog, holdout=holdout)):
        keras.backend.clear_session()
        train.set_seed(p.seed + k)
        ds_tr = make_dataset(tr, image_size=size, batch_size=p.batch_size, training=True,
                             augment=p.augment, balance=p.balance, n_classes=session.n_classes,
                             seed=p.seed + k)
        ds_held = make_dataset(held, image_size=size, batch_size=p.batch_size)
        weights = (train.class_weights(tr["label"], session.n_classes)
                   if p.balance == "weights" else None)
        steps = steps_per_epoch(tr, p.batch_size) if p.balance == "resample" else None
        common = dict(run=session.run, patience=p.patience, class_weight=weights,
                      steps_per_epoch=steps, schedule=p.lr_schedule, force=session.force,
                      verbose=verbose)
        name = f"{prefix}_fold{k}"
        model, rec = train.fit(build_model(), ds_tr, ds_held, name=name, epochs=epochs,
                               learning_rate=p.learning_rate, **common)
        records = [rec]
        if finetune_epochs > 0:
            name = f"{prefix}_fold{k}_ft"
            model, rec2 = train.fit(unfreeze(model), ds_tr, ds_held, name=name,
                                    epochs=finetune_epochs,
                                    learning_rate=p.learning_rate * finetune_lr_factor, **common)
            records.append(rec2)
        history, boundary = _fold_history(records)
        parts = [held, session.frame("test")] + ([session.frame("val")] if holdout == "val" else [])
        probs = train.predict_probs(model, pd.concat(parts, ignore_index=True), size)
        cut = np.cumsum([len(f) for f in parts])[:-1]
        oof, test, *val = np.split(probs, cut)
        results.append({
            "fold": k, "name": name, "n_train": len(tr), "n_heldout": len(held),
            "train_seconds": float(sum(r["train_seconds"] for r in records)),
            "epochs_run": int(sum(r["epochs_run"] for r in records)),
            "loaded": all(r["loaded"] for r in records),
            "history": history, "stage_boundary": boundary,
            "heldout": held[["image_id", "label"]].reset_index(drop=True),
            "oof": oof, "val": val[0] if val else None, "test": test,
        })
    return results


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
