"""The ``tf.data`` input pipeline every model uses.

Decode and resize run in parallel; the decoded uint8 images are cached (in memory, or on disk
with ``cache_file``) so later epochs skip the JPEG work; then shuffle, class balancing,
batching, augmentation (training only, on whole batches) and prefetch. Models receive float32
RGB in [0, 255]; their own first layer rescales.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import tensorflow as tf

AUTOTUNE = tf.data.AUTOTUNE
BALANCE_MODES = ("none", "weights", "resample")


def decode_resize(path: tf.Tensor, image_size: tuple[int, int]) -> tf.Tensor:
    """Read one JPEG/PNG file and resize it to ``image_size`` (height, width) as uint8 RGB."""
    raw = tf.io.read_file(path)
    img = tf.io.decode_image(raw, channels=3, expand_animations=False)
    img.set_shape([None, None, 3])
    img = tf.image.resize(img, image_size, method="bilinear", antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(img), 0, 255), tf.uint8)


def augment_batch(images: tf.Tensor, seed: tf.Tensor, *, rotation: float = 0.1,
                  zoom: float = 0.1, brightness: float = 0.1, contrast: float = 0.1) -> tf.Tensor:
    """The training augmentation of seed work (flips, rotation, zoom, brightness, contrast),
    fused into one warp and one multiply-add, on a batch in [0, 255] (uint8 or float; the
    result is float32).

    Flips, rotation (up to ``rotation`` of a turn), zoom (up to ``zoom`` in or out) are one
    projective transform per image (reflect fill, bilinear), then brightness (up to
    ``brightness`` x 255 added) and contrast (deviation from the image mean scaled by up to
    ``1 +- contrast``). Random draws are stateless from ``seed`` (shape ``[2]``), so a seeded
    pipeline is reproducible.
    """
    shape = tf.shape(images)
    n, h, w = shape[0], shape[1], shape[2]
    u = tf.random.stateless_uniform([n, 6], seed=seed)
    fx = tf.where(u[:, 0] < 0.5, -1.0, 1.0)
    fy = tf.where(u[:, 1] < 0.5, -1.0, 1.0)
    angle = (2.0 * u[:, 2] - 1.0) * rotation * 2.0 * math.pi
    scale = 1.0 + (2.0 * u[:, 3] - 1.0) * zoom  # input pixels per output pixel
    cos, sin = tf.cos(angle) * scale, tf.sin(angle) * scale
    a0, a1, b0, b1 = cos * fx, -sin * fy, sin * fx, cos * fy
    cx, cy = (tf.cast(w, tf.float32) - 1.0) / 2.0, (tf.cast(h, tf.float32) - 1.0) / 2.0
    zeros = tf.zeros_like(a0)
    transforms = tf.stack([a0, a1, cx - a0 * cx - a1 * cy, b0, b1, cy - b0 * cx - b1 * cy,
                           zeros, zeros], axis=1)
    x = tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=transforms, output_shape=tf.stack([h, w]), fill_value=0.0,
        interpolation="BILINEAR", fill_mode="REFLECT")
    x = tf.cast(x, tf.float32)
    # brightness b then contrast f about the mean m: ((x + b) - (m + b)) f + m + b
    # = x f + m (1 - f) + b, one multiply-add per pixel.
    b = ((2.0 * u[:, 4] - 1.0) * brightness * 255.0)[:, None, None, None]
    f = (1.0 + (2.0 * u[:, 5] - 1.0) * contrast)[:, None, None, None]
    mean = tf.reduce_mean(x, axis=[1, 2], keepdims=True)
    return tf.clip_by_value(x * f + (mean * (1.0 - f) + b), 0.0, 255.0)


def _check_frame(frame: pd.DataFrame, training: bool) -> None:
    """Refuse frames the pipeline cannot or must not read."""
    missing = {"path", "label"} - set(frame.columns)
    if missing:
        raise ValueError(f"the frame lacks column(s) {sorted(missing)}: pass rows of a catalog")
    if len(frame) == 0:
        raise ValueError("the frame is empty: no images to read")
    if not training and "synthetic" in frame.columns and frame["synthetic"].fillna(False).any():
        n = int(frame["synthetic"].fillna(False).sum())
        raise ValueError(f"{n} generated (GAN) image(s) in an evaluation frame: synthetic images "
                         "may only be used for training")


def make_dataset(frame: pd.DataFrame, *, image_size: tuple[int, int], batch_size: int,
                 training: bool = False, augment: bool = True, balance: str = "none",
                 n_classes: int | None = None, seed: int = 0, cache: bool = True,
                 cache_file: str | None = None, with_labels: bool = True) -> tf.data.Dataset:
    """A batched dataset of ``(images float32 [0,255], labels int32)`` for a catalog frame.

    Args:
        frame: catalog rows (``path``, ``label``); evaluation frames must not hold GAN images.
        image_size: (height, width) the images are resized to.
        training: shuffle, balance and augment; otherwise keep the frame's order.
        augment: random flips/rotation/zoom/brightness/contrast (training only).
        balance: ``resample`` draws every class equally often (an endless dataset: use
            :func:`steps_per_epoch`); ``weights`` and ``none`` leave the data as is
            (``weights`` is applied by ``fit`` through :func:`skinlib.training.fit.class_weights`).
        n_classes: number of classes (needed for ``resample``).
        seed: shuffle and augmentation seed.
        cache: keep decoded images in memory (or in ``cache_file``) after the first epoch.
        with_labels: ``False`` yields images only (for ``predict``).
    """
    if balance not in BALANCE_MODES:
        raise ValueError(f"balance={balance!r}: use one of {BALANCE_MODES}")
    _check_frame(frame, training)
    size = tuple(int(s) for s in image_size)
    paths = frame["path"].astype(str).to_numpy()
    labels = frame["label"].astype("int32").to_numpy()
    ds = tf.data.Dataset.from_tensor_slices((paths, labels))
    ds = ds.map(lambda p, y: (decode_resize(p, size), y), num_parallel_calls=AUTOTUNE,
                deterministic=True)
    if cache:
        ds = ds.cache(cache_file or "")
    if training:
        if balance == "resample":
            if not n_classes:
                raise ValueError("balance='resample' needs n_classes")
            present = sorted(set(labels.tolist()))
            parts = [ds.filter(lambda x, y, c=c: tf.equal(y, c))
                     .shuffle(max(1, int((labels == c).sum())), seed=seed + c).repeat()
                     for c in present]
            ds = tf.data.Dataset.sample_from_datasets(
                parts, weights=[1.0 / len(present)] * len(present), seed=seed)
        else:
            ds = ds.shuffle(min(len(frame), 20000), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, num_parallel_calls=AUTOTUNE, deterministic=True)
    if training and augment:  # uint8 in, float32 out; a fresh seed per batch and epoch
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        ds = tf.data.Dataset.zip(ds, seeds).map(
            lambda xy, sd: (augment_batch(xy[0], sd), xy[1]), num_parallel_calls=AUTOTUNE,
            deterministic=True)
    else:
        ds = ds.map(lambda x, y: (tf.cast(x, tf.float32), y), num_parallel_calls=AUTOTUNE)
    if not with_labels:
        ds = ds.map(lambda x, y: x)
    return ds.prefetch(AUTOTUNE)


def steps_per_epoch(frame: pd.DataFrame, batch_size: int) -> int:
    """Batches per epoch for an endless (resampled) dataset: one pass over the frame's size."""
    return max(1, math.ceil(len(frame) / batch_size))


def load_array(frame: pd.DataFrame, image_size: tuple[int, int], batch_size: int = 256
               ) -> tuple[np.ndarray, np.ndarray]:
    """Decode a frame's images into one uint8 array ``(n, h, w, 3)`` and its labels."""
    ds = make_dataset(frame, image_size=image_size, batch_size=batch_size, cache=False)
    xs, ys = [], []
    for x, y in ds:
        xs.append(x.numpy().astype(np.uint8))
        ys.append(y.numpy())
    return np.concatenate(xs), np.concatenate(ys)
