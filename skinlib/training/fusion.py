"""Train the image-plus-metadata model of notebook 10 through the one ``fit``.

Its input pipeline is :func:`skinlib.pipeline.make_dataset` (decode, resize, cache) read in
the frame's order and zipped with the metadata rows of the same frame, then shuffled, batched
and augmented here exactly as ``make_dataset`` does for the image-only model, so both models
see the same kind of batches: ``({"image": float32 [0, 255], "meta": float32}, label)``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from skinlib.metadata import MetaEncoder
from skinlib.models.fusion import build_fusion
from skinlib.training.fit import augment_place, budget, build_scope, class_weights, fit


def fusion_dataset(frame: pd.DataFrame, meta: np.ndarray, *, image_size, batch_size: int,
                   training: bool = False, augment: bool = True, seed: int = 0,
                   cache: bool = True, output: str = "float32"):
    """A batched ``tf.data`` dataset of ``({"image", "meta"}, label)`` for a catalog frame.

    Args:
        frame: catalog rows (``path``, ``label``); ``meta``: their metadata rows, same order.
        training: shuffle and augment (flips, rotation, zoom, brightness, contrast), as
            :func:`skinlib.pipeline.make_dataset`; otherwise keep the frame's order.
        cache: read the images from the decoded-image cache (``make_dataset``); ``False``
            decodes them on every pass.
        output: ``float32`` (augmented here when training) or ``uint8`` (never augmented
            here: the model augments, :func:`skinlib.training.fit.trained_model`).
    """
    import tensorflow as tf

    from skinlib.pipeline import AUTOTUNE, augment_batch, make_dataset

    meta = np.asarray(meta, dtype=np.float32)
    if meta.ndim != 2 or len(meta) != len(frame):
        raise ValueError(f"meta has shape {meta.shape} but the frame has {len(frame)} rows: "
                         "pass encoder.transform(frame) for the same frame")
    images = make_dataset(frame, image_size=image_size, batch_size=batch_size,
                          cache=cache).unbatch().apply(tf.data.experimental.assert_cardinality(
                              len(frame)))  # unbatch() forgets the length a schedule needs
    rows = tf.data.Dataset.from_tensor_slices((meta, frame["label"].astype("int32").to_numpy()))

    def aligned(xy, my):  # make_dataset keeps the frame's order when not training: check it
        tf.debugging.assert_equal(xy[1], my[1], message="image and metadata rows out of order")
        return tf.cast(xy[0], tf.uint8), my[0], my[1]

    ds = tf.data.Dataset.zip(images, rows).map(aligned, num_parallel_calls=AUTOTUNE)
    if training:
        ds = ds.shuffle(min(len(frame), 20000), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, num_parallel_calls=AUTOTUNE, deterministic=True)
    if training and augment and output == "float32":
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        ds = tf.data.Dataset.zip(ds, seeds).map(
            lambda b, sd: ({"image": augment_batch(b[0], sd), "meta": b[1]}, b[2]),
            num_parallel_calls=AUTOTUNE, deterministic=True)
    else:
        dtype = tf.float32 if output == "float32" else tf.uint8
        ds = ds.map(lambda x, m, y: ({"image": tf.cast(x, dtype), "meta": m}, y),
                    num_parallel_calls=AUTOTUNE)
    return ds.prefetch(AUTOTUNE)


def encoder_path(name: str) -> str:
    """Where the fitted metadata encoder of model ``name`` is kept, relative to the run folder."""
    return f"models/{name}_meta_encoder.json"


def train_fusion(session, name: str, *, train_frame: pd.DataFrame | None = None,
                 val_frame: pd.DataFrame | None = None, arch: str | None = None,
                 balance: str | None = None, epochs: int | None = None,
                 schedule: str | None = None, verbose: int = 2):
    """Fit the image-plus-metadata model with the baseline CNN's recipe, or load it.

    Same trunk (``cnn_arch``), epochs, patience, learning rate, schedule, batch size,
    augmentation and class balancing as :func:`skinlib.training.cnn.train_cnn`; the metadata
    encoder is fitted on the training frame and saved beside the model.

    Returns:
        ``(model, record, encoder)``; ``record`` as :func:`skinlib.training.fit.fit` returns it,
        plus :func:`skinlib.training.fit.budget` (``epochs_max``, ``images_seen``).
    """
    p = session.profile
    train = session.frame("train") if train_frame is None else train_frame
    val = session.frame("val") if val_frame is None else val_frame
    balance = balance or p.balance
    if balance not in ("none", "weights"):
        raise ValueError(f"balance={balance!r}: the metadata model supports 'none' and 'weights' "
                         "(class weights); re-sampling would have to carry the metadata rows")
    encoder = MetaEncoder.fit(train)
    session.run.write_record(encoder_path(name), encoder.to_dict())
    size = tuple(p.image_size)
    in_model = augment_place(p) == "model"

    def data(frame, training):
        return fusion_dataset(frame, encoder.transform(frame), image_size=size,
                              batch_size=p.batch_size, training=training, augment=p.augment,
                              seed=p.seed, output="uint8" if in_model else "float32")

    with build_scope():
        model = build_fusion(size, len(encoder.feature_names), session.n_classes,
                             arch=arch or p.cnn_arch)
    weights = class_weights(train["label"], session.n_classes) if balance == "weights" else None
    epochs = epochs or p.epochs
    model, record = fit(model, data(train, True), data(val, False), run=session.run, name=name,
                        epochs=epochs, patience=p.patience,
                        learning_rate=p.learning_rate, class_weight=weights,
                        schedule=schedule or p.lr_schedule, force=session.force,
                        augment_seed=p.seed if in_model else None, verbose=verbose)
    # one epoch shows the training frame once (no re-sampling here)
    return model, {**record, **budget(record, epochs_max=epochs, images_per_epoch=len(train))}, \
        encoder


def predict_fusion(model, frame: pd.DataFrame, meta: np.ndarray, image_size,
                   batch_size: int = 256) -> np.ndarray:
    """Class probabilities of a two-input model for every row of a frame, in the frame's order."""
    ds = fusion_dataset(frame, meta, image_size=image_size, batch_size=batch_size)
    return np.asarray(model.predict(ds.map(lambda x, y: x), verbose=0), dtype=np.float64)


def baseline_name(run, reuse: bool = True) -> str:
    """The image-only baseline's model name: notebook 02's when ``reuse`` and this run folder
    finished it (same recipe: pass ``reuse=False`` when this notebook changed the profile),
    else ``10_image_only``, trained here with :func:`skinlib.training.cnn.train_cnn`."""
    from skinlib.training.fit import is_done

    return "02_baseline_cnn" if reuse and is_done(run, "02_baseline_cnn") else "10_image_only"
