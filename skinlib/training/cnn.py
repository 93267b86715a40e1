"""Train the baseline CNN of notebook 02 on any training frame, with one seed or several
(notebooks 04 and 12 reuse it)."""

from __future__ import annotations

import pandas as pd

from skinlib.models.cnn import build_cnn
from skinlib.training.fit import (budget, build_scope, epoch_images, fit, repeat_name,
                                 repeat_seed, set_seed, training_inputs)


def train_cnn(session, name: str, train_frame: pd.DataFrame | None = None, *,
              val_frame: pd.DataFrame | None = None, arch: str | None = None,
              balance: str | None = None, epochs: int | None = None,
              image_size: tuple[int, int] | None = None, schedule: str | None = None,
              seed: int | None = None, verbose: int = 2):
    """Build and fit the profile's baseline CNN, or load it if this run already trained it.

    Args:
        session: the notebook's :class:`skinlib.session.Session`.
        name: the training run's name (model file ``models/<name>.keras``).
        train_frame: training rows (default: the training split; notebook 04 adds GAN rows).
        val_frame: validation rows for early stopping (default: the validation split).
        arch, balance, epochs, image_size, schedule: override the profile's values.
        seed: seeds the weights and the data order (default the profile's); set here, before
            the model is built, so every arm and repeat starts from its own seed alone.

    Returns:
        ``(model, record)`` as :func:`skinlib.training.fit.fit` returns them, plus ``seed`` and
        :func:`skinlib.training.fit.budget` (``epochs_max``, ``images_seen``).
    """
    p = session.profile
    seed = p.seed if seed is None else int(seed)
    size = tuple(image_size or p.image_size)
    frame = session.frame("train") if train_frame is None else train_frame
    set_seed(seed)
    inputs = training_inputs(frame, p, n_classes=session.n_classes, image_size=size,
                             balance=balance, seed=seed,
                             val_frame=session.frame("val") if val_frame is None else val_frame)
    with build_scope():
        model = build_cnn(size, session.n_classes, arch=arch or p.cnn_arch)
    epochs = epochs or p.epochs
    model, record = fit(model, **inputs._asdict(), run=session.run, name=name, epochs=epochs,
                        patience=p.patience, learning_rate=p.learning_rate,
                        schedule=schedule or p.lr_schedule, force=session.force, verbose=verbose)
    return model, {**record, "seed": seed, **budget(
        record, epochs_max=epochs, images_per_epoch=epoch_images(frame, inputs, p.batch_size))}


def train_cnn_seeds(session, name: str, repeats: int | None = None, **kwargs) -> list[tuple]:
    """:func:`train_cnn` once per seed: repeat ``r`` is named
    :func:`~skinlib.training.fit.repeat_name` and seeded
    :func:`~skinlib.training.fit.repeat_seed` (``r = 0``: ``name`` and the profile's seed).

    Args:
        repeats: how many seeds (default the profile's ``repeats``).
        kwargs: passed to :func:`train_cnn` (not ``seed``).

    Returns:
        One ``(model, record)`` per seed.
    """
    p = session.profile
    repeats = p.repeats if repeats is None else int(repeats)
    if repeats < 1:
        raise ValueError(f"repeats={repeats}: train at least one seed")
    return [train_cnn(session, repeat_name(name, r), seed=repeat_seed(p, r), **kwargs)
            for r in range(repeats)]
