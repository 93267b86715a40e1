"""Train the ResNet50 of notebook 06: two stages on pretrained weights, one stage from scratch.

With pretrained weights, stage 1 trains the head on a frozen base (Adam 1e-3); stage 2 unfreezes
the base from layer ``unfreeze_from`` on (Adam 1e-5) with every BatchNormalization layer kept
frozen (see :func:`skinlib.models.transfer.set_stage`). Without them there is nothing to
transfer: every layer, BatchNormalization included, trains from the start in one stage (Adam
1e-3) for the epochs of both stages together, and the row is named ``06_resnet50_scratch``.
Every stage uses balanced class weights and ReduceLROnPlateau, whatever the profile's
``balance`` and ``lr_schedule``.
"""

from __future__ import annotations

from skinlib.models.transfer import build_resnet50, set_stage
from skinlib.training.fit import (budget, build_scope, fit, repeat_name, repeat_seed, set_seed,
                                  training_inputs)

TRANSFER_NAME = "06_resnet50"  # model file, metrics file and table row with pretrained weights
SCRATCH_NAME = "06_resnet50_scratch"  # the same without pretrained weights


def model_name(weights) -> str:
    """The row name of notebook 06's model: :data:`SCRATCH_NAME` when ``weights`` is None."""
    return SCRATCH_NAME if weights is None else TRANSFER_NAME


def train_transfer(session, *, weights="imagenet", image_size=None, epochs1: int | None = None,
                   epochs2: int | None = None, unfreeze_from: int | None = None,
                   repeat: int = 0, verbose: int = 2):
    """Train on the session's training split (or load what this run folder already trained).

    Args:
        weights: ``"imagenet"``, a weights file, or None (from scratch: one stage of
            ``epochs1 + epochs2`` epochs, every layer trainable).
        repeat: which seed (:func:`~skinlib.training.fit.repeat_seed`); its stages are named
            :func:`~skinlib.training.fit.repeat_name` (``06_stage1``, ``06_stage1_s1``, ...).

    Returns:
        ``(model, records)``: the final model and one :func:`skinlib.training.fit.fit` record
        per stage, ``{"stage1": ..., "stage2": ...}`` or, from scratch, ``{"scratch": ...}``.
    """
    p = session.profile
    size = tuple(image_size or p.transfer_size)
    seed = repeat_seed(p, repeat)
    set_seed(seed)
    inputs = training_inputs(session.frame("train"), p, n_classes=session.n_classes, seed=seed,
                             val_frame=session.frame("val"), image_size=size, balance="weights")
    common = dict(**inputs._asdict(), run=session.run, patience=p.patience, schedule="plateau",
                  force=session.force, verbose=verbose)
    epochs1, epochs2 = epochs1 or p.transfer_epochs_stage1, epochs2 or p.transfer_epochs_stage2
    with build_scope():
        model = build_resnet50(size, session.n_classes, weights=weights)
    n = len(session.frame("train"))  # balance="weights": one epoch shows the frame once
    if weights is None:
        model, rec = fit(model, name=repeat_name("06_scratch", repeat), epochs=epochs1 + epochs2,
                         learning_rate=1e-3, **common)
        return model, {"scratch": {**rec, "seed": seed, **budget(
            rec, epochs_max=epochs1 + epochs2, images_per_epoch=n)}}
    model, rec1 = fit(model, name=repeat_name("06_stage1", repeat), epochs=epochs1,
                      learning_rate=1e-3, **common)
    set_stage(model, 2, unfreeze_from or p.transfer_unfreeze_from)
    model, rec2 = fit(model, name=repeat_name("06_stage2", repeat), epochs=epochs2,
                      learning_rate=1e-5, **common)
    return model, {"stage1": {**rec1, "seed": seed, **budget(rec1, epochs_max=epochs1,
                                                              images_per_epoch=n)},
                   "stage2": {**rec2, "seed": seed, **budget(rec2, epochs_max=epochs2,
                                                              images_per_epoch=n)}}


def combined_record(records: dict) -> dict:
    """The stages of :func:`train_transfer` as one training record for evaluation: epochs run,
    epochs allowed, images seen and seconds summed over the stages, and the seed."""
    keys = ("epochs_run", "epochs_max", "images_seen", "train_seconds")
    out = {k: sum(r.get(k) or 0 for r in records.values()) for k in keys}
    return {**out, "seed": next(iter(records.values())).get("seed")}


def train_transfer_seeds(session, repeats: int | None = None, **kwargs) -> list[tuple]:
    """:func:`train_transfer` once per seed (default the profile's ``repeats_large``).

    Returns:
        One ``(model, records)`` per seed, as :func:`train_transfer` returns them.
    """
    repeats = session.profile.repeats_large if repeats is None else int(repeats)
    if repeats < 1:
        raise ValueError(f"repeats={repeats}: train at least one seed")
    return [train_transfer(session, repeat=r, **kwargs) for r in range(repeats)]
