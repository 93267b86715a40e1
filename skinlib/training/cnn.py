"""Train the baseline CNN of notebook 02 on any training frame (notebooks 04 and 12 reuse it)."""

from __future__ import annotations

import pandas as pd

from skinlib.models.cnn import build_cnn
from skinlib.training.fit import fit, get_strategy, training_inputs


def train_cnn(session, name: str, train_frame: pd.DataFrame | None = None, *,
              val_frame: pd.DataFrame | None = None, arch: str | None = None,
              balance: str | None = None, epochs: int | None = None,
              image_size: tuple[int, int] | None = None, schedule: str | None = None,
              verbose: int = 2):
    """Build and fit the profile's baseline CNN, or load it if this run already trained it.

    Args:
        session: the notebook's :class:`skinlib.session.Session`.
        name: the training run's name (model file ``models/<name>.keras``).
        train_frame: training rows (default: the training split; notebook 04 adds GAN rows).
        val_frame: validation rows for early stopping (default: the validation split).
        arch, balance, epochs, image_size, schedule: override the profile's values.

    Returns:
        ``(model, record)`` as :func:`skinlib.training.fit.fit` returns them.
    """
    p = session.profile
    size = tuple(image_size or p.image_size)
    inputs = training_inputs(session.frame("train") if train_frame is None else train_frame, p,
                             n_classes=session.n_classes, image_size=size, balance=balance,
                             val_frame=session.frame("val") if val_frame is None else val_frame)
    with get_strategy().scope():
        model = build_cnn(size, session.n_classes, arch=arch or p.cnn_arch)
    return fit(model, **inputs._asdict(), run=session.run, name=name,
               epochs=epochs or p.epochs, patience=p.patience, learning_rate=p.learning_rate,
               schedule=schedule or p.lr_schedule, force=session.force, verbose=verbose)
