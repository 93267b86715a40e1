"""K-fold training over the lesion-grouped folds (notebook 05); the averaging is in ``ensemble``.

**Which data every model shares.** The shared split (``splits.csv``) gives every train+val
lesion a fold. Here the folds are taken over the *training* split only (``holdout="val"``):
fold model k trains on the other folds' training images and early-stops on its own held-out
fold. The validation split is never seen by any fold model, neither for gradient steps nor for
early stopping, so it is the one held-out set all K models share; the BMA weights and the
temperature (:mod:`skinlib.ensemble`) are fitted on it, and the test split is touched once at
the end. (Weights from out-of-fold predictions would score each model on *different* images, so
the likelihoods would not be comparable; ``holdout="none"`` folds over train+val for a plain
cross-validation, and then only the OOF predictions are held out.)
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from skinlib.training.fit import budget, build_scope, epoch_images, fit, predict_probs, set_seed
from skinlib.training.fit import stage_history, training_inputs

HOLDOUTS = ("val", "none")


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


def _train_fold(session, k: int, tr, held, build_model, unfreeze, *, prefix: str, seed: int,
                epochs: int, finetune_epochs: int, finetune_lr_factor: float, verbose: int):
    """Train stage 1 (and stage 2 when ``finetune_epochs``) of fold ``k`` (seed ``seed + k``).

    Returns:
        ``(model, name, records)``: the final model, its training name, one record per stage
        (with :func:`skinlib.training.fit.budget`).
    """
    import keras

    p = session.profile
    keras.backend.clear_session()
    set_seed(seed + k)
    inputs = training_inputs(tr, p, n_classes=session.n_classes, val_frame=held, seed=seed + k)
    per_epoch = epoch_images(tr, inputs, p.batch_size)
    common = dict(**inputs._asdict(), run=session.run, patience=p.patience,
                  schedule=p.lr_schedule, force=session.force, verbose=verbose)
    with build_scope():
        model = build_model()
    name = f"{prefix}_fold{k}"
    model, rec = fit(model, name=name, epochs=epochs, learning_rate=p.learning_rate, **common)
    records = [{**rec, **budget(rec, epochs_max=epochs, images_per_epoch=per_epoch)}]
    if finetune_epochs > 0:
        name = f"{prefix}_fold{k}_ft"
        model, rec2 = fit(unfreeze(model), name=name, epochs=finetune_epochs,
                          learning_rate=p.learning_rate * finetune_lr_factor, **common)
        records.append({**rec2, **budget(rec2, epochs_max=finetune_epochs,
                                         images_per_epoch=per_epoch)})
    return model, name, records


def _fold_result(session, k: int, tr, held, model, name: str, records: list[dict],
                 holdout: str) -> dict:
    """One fold's summary, epoch log and held-out, validation and test probabilities."""
    history, boundary = stage_history([r.get("history") for r in records])
    parts = [held, session.frame("test")] + ([session.frame("val")] if holdout == "val" else [])
    probs = predict_probs(model, pd.concat(parts, ignore_index=True),
                          tuple(session.profile.image_size))
    cut = np.cumsum([len(f) for f in parts])[:-1]
    oof, test, *val = np.split(probs, cut)
    return {
        "fold": k, "name": name, "n_train": len(tr), "n_heldout": len(held),
        "train_seconds": float(sum(r["train_seconds"] for r in records)),
        **{key: int(sum(r[key] for r in records))
           for key in ("epochs_run", "epochs_max", "images_seen")},
        "loaded": all(r["loaded"] for r in records),
        "history": history, "stage_boundary": None if boundary is None else boundary - 1,
        "heldout": held[["image_id", "label"]].reset_index(drop=True),
        "oof": oof, "val": val[0] if val else None, "test": test,
    }


def train_folds(session, build_model, *, prefix: str = "05", holdout: str = "val",
                epochs: int | None = None, finetune_epochs: int | None = None,
                finetune_lr_factor: float = 0.1, unfreeze=None, seed: int | None = None,
                verbose: int = 2) -> list[dict]:
    """Train one model per fold (early stopping on its own held-out fold) and predict.

    Each fold's stage 1 is ``fit(..., name=f"{prefix}_fold{k}")`` and its optional stage 2
    (``unfreeze(model)`` then ``learning_rate * finetune_lr_factor``) ``{prefix}_fold{k}_ft``,
    so a re-run loads finished folds and a killed one resumes.

    Args:
        session: the notebook's session.
        build_model: ``() -> keras.Model`` building a fresh, uncompiled model (called under
            the device strategy's scope).
        holdout: see :func:`fold_frames`.
        epochs, finetune_epochs: default the profile's ``expert_epochs`` and
            ``expert_finetune_epochs`` (0 skips stage 2).
        unfreeze: ``model -> model`` opening layers for stage 2 (default: the expert trunks).
        seed: fold k is seeded ``seed + k`` (default the profile's seed; a repeat passes
            :func:`skinlib.training.fit.repeat_seed` and its own ``prefix``).

    Returns:
        One dict per fold: ``fold``, ``name`` (the final model's training name), ``n_train``,
        ``n_heldout``, ``train_seconds``, ``epochs_run``, ``epochs_max``, ``images_seen``
        (summed over stages), ``loaded``, ``history`` (DataFrame),
        ``stage_boundary`` (the last epoch of stage 1, ``None`` with one stage), ``heldout``
        (image_id, label), ``oof``, ``val`` (``None`` when ``holdout="none"``) and ``test``
        probabilities.
    """
    p = session.profile
    epochs = p.expert_epochs if epochs is None else epochs
    finetune_epochs = p.expert_finetune_epochs if finetune_epochs is None else finetune_epochs
    if unfreeze is None:
        from skinlib.models.experts import set_experts_trainable as unfreeze
    results = []
    for k, (tr, held) in enumerate(fold_frames(session.catalog, holdout=holdout)):
        model, name, records = _train_fold(
            session, k, tr, held, build_model, unfreeze, prefix=prefix,
            seed=p.seed if seed is None else int(seed), epochs=epochs,
            finetune_epochs=finetune_epochs, finetune_lr_factor=finetune_lr_factor,
            verbose=verbose)
        results.append(_fold_result(session, k, tr, held, model, name, records, holdout))
    return results
