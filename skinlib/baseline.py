"""Train the baseline CNN of notebook 02 on any training frame (notebooks 02, 04 and 08 reuse it)."""

from __future__ import annotations

import pandas as pd

from skinlib import train
from skinlib.models.cnn import build_cnn
from skinlib.pipeline import make_dataset, steps_per_epoch


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
        ``(model, record)`` as :func:`skinlib.train.fit` returns them.
    """
    p = session.profile
    train_frame = session.frame("train") if train_frame is None else train_frame
    val_frame = session.frame("val") if val_frame is None else val_frame
    balance = balance or p.balance
    size = tuple(image_size or p.image_size)
    ds_train = make_dataset(train_frame, image_size=size, batch_size=p.batch_size, training=True,
                            augment=p.augment, balance=balance, n_classes=session.n_classes,
                            seed=p.seed)
    ds_val = make_dataset(val_frame, image_size=size, batch_size=p.batch_size)
    weights = (train.class_weights(train_frame["label"], session.n_classes)
               if balance == "weights" else None)
    steps = steps_per_epoch(train_frame, p.batch_size) if balance == "resample" else None
    model = build_cnn(size, session.n_classes, arch=arch or p.cnn_arch)
    return train.fit(model, ds_train, ds_val, run=session.run, name=name,
                     epochs=epochs or p.epochs, patience=p.patience,
                     learning_rate=p.learning_rate, class_weight=weights, steps_per_epoch=steps,
                     schedule=schedule or p.lr_schedule, force=session.force, verbose=verbose)
