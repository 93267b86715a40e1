"""Train the ResNet50 transfer model of notebook 06 in two stages.

Stage 1 trains the head on a frozen base (Adam 1e-3); stage 2 unfreezes the base from layer
``unfreeze_from`` on (Adam 1e-5) with every BatchNormalization layer kept frozen (see
:func:`skinlib.models.transfer.set_stage`). Both stages use balanced class weights and
ReduceLROnPlateau, whatever the profile's ``balance`` and ``lr_schedule``.
"""

from __future__ import annotations

from skinlib.models.transfer import build_resnet50, set_stage
from skinlib.training.fit import fit, get_strategy, training_inputs


def train_transfer(session, *, weights="imagenet", image_size=None, epochs1: int | None = None,
                   epochs2: int | None = None, unfreeze_from: int | None = None,
                   verbose: int = 2):
    """Train both stages on the session's training split (or load them if already done).

    Returns:
        ``(model, records)``: the stage-2 model and ``{"stage1": record, "stage2": record}``
        as :func:`skinlib.training.fit.fit` returns them.
    """
    p = session.profile
    size = tuple(image_size or p.transfer_size)
    inputs = training_inputs(session.frame("train"), p, n_classes=session.n_classes,
                             val_frame=session.frame("val"), image_size=size, balance="weights")
    common = dict(**inputs._asdict(), run=session.run, patience=p.patience, schedule="plateau",
                  force=session.force, verbose=verbose)
    with get_strategy().scope():
        model = build_resnet50(size, session.n_classes, weights=weights)
    model, rec1 = fit(model, name="06_stage1", epochs=epochs1 or p.transfer_epochs_stage1,
                      learning_rate=1e-3, **common)
    set_stage(model, 2, unfreeze_from or p.transfer_unfreeze_from)
    model, rec2 = fit(model, name="06_stage2", epochs=epochs2 or p.transfer_epochs_stage2,
                      learning_rate=1e-5, **common)
    return model, {"stage1": rec1, "stage2": rec2}
