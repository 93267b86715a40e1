"""The ``tf.data`` input pipeline every model uses.

Images come decoded and resized from the on-disk uint8 cache (:mod:`skinlib.image_cache`:
decoded once per size, then read), then shuffle, class balancing, batching, augmentation
(training only, on whole batches) and prefetch. Models receive float32 RGB in [0, 255] and
rescale in their own first layer; with ``output="uint8"`` the batches stay uint8 (a quarter of
the bytes to the device) and augmentation is left to an :class:`Augment` layer in the model, so
it runs where the model runs.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from skinlib import image_cache
from skinlib.image_cache import decode_resize

AUTOTUNE = tf.data.AUTOTUNE
BALANCE_MODES = ("none", "weights", "resample")
OUTPUTS = ("float32", "uint8")


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


@keras.saving.register_keras_serializable(package="skinlib")
class Augment(keras.layers.Layer):
    """:func:`augment_batch` as a Keras layer, so augmentation runs where the model runs.

    Put it first in a model fed ``make_dataset(..., output="uint8")`` batches; when not
    training it only casts to float32. ``ranges``: ``rotation``, ``zoom``, ``brightness``,
    ``contrast`` (each 0.1 unless given), as in :func:`augment_batch`.
    """

    RANGES = ("rotation", "zoom", "brightness", "contrast")

    def __init__(self, seed: int = 0, **kwargs):
        ranges = {k: float(kwargs.pop(k, 0.1)) for k in self.RANGES}
        super().__init__(**kwargs)
        self.seed, self.ranges = int(seed), ranges
        self.seed_generator = keras.random.SeedGenerator(self.seed)

    def call(self, images, training=False):
        """Augmented float32 images when training, else the images cast to float32."""
        if not training:
            return tf.cast(images, tf.float32)
        seed = tf.cast(self.seed_generator.next(), tf.int64)
        return augment_batch(images, seed, **self.ranges)

    def compute_output_shape(self, input_shape):
        """Same shape as the input."""
        return input_shape

    def get_config(self):
        """Seed and ranges, for saving."""
        return {**super().get_config(), "seed": self.seed, **self.ranges}


def with_augment(model, seed: int = 0, **ranges):
    """``model`` behind an :class:`Augment` layer: it takes uint8 batches (from
    ``make_dataset(..., output="uint8")``) and augments them on its own device when training."""
    inputs = keras.Input(model.input_shape[1:], dtype="uint8", name="uint8_image")
    outputs = model(Augment(seed, **ranges)(inputs))
    return keras.Model(inputs, outputs, name=f"{model.name}_augmented")


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


def _source(frame: pd.DataFrame, size: tuple[int, int], cache: bool, cache_dir, resize: str,
            progress: bool):
    """``(dataset, to_images)``: ``(x, int32 label)`` elements in the frame's order, and the
    function that turns a batch of ``x`` into uint8 images.

    From the cache, ``x`` is the row's index and ``to_images`` gathers a whole batch of rows
    at once (shuffling indices, not images); with ``cache=False``, ``x`` is the image itself,
    decoded on every pass.
    """
    labels = frame["label"].astype("int32").to_numpy()
    if cache:
        images = tf.convert_to_tensor(image_cache.load_images(
            frame["path"], size, resize, cache_dir=cache_dir, progress=progress))
        ds = tf.data.Dataset.from_tensor_slices((np.arange(len(frame), dtype=np.int32), labels))
        return ds, lambda rows: tf.gather(images, rows)
    image_cache.file_keys(frame["path"])  # a missing file is named here, not deep in TF
    ds = tf.data.Dataset.from_tensor_slices((frame["path"].astype(str).to_numpy(), labels))
    ds = ds.map(lambda p, y: (decode_resize(p, size, resize), y), num_parallel_calls=AUTOTUNE,
                deterministic=True)
    return ds, lambda x: x


def _shuffle_or_balance(ds: tf.data.Dataset, labels: np.ndarray, balance: str,
                        n_classes: int | None, seed: int) -> tf.data.Dataset:
    """Training order: a reshuffle each epoch, or (``resample``) every class equally often."""
    if balance != "resample":
        return ds.shuffle(min(len(labels), 20000), seed=seed, reshuffle_each_iteration=True)
    if not n_classes:
        raise ValueError("balance='resample' needs n_classes")
    present = sorted(set(labels.tolist()))
    parts = [ds.filter(lambda x, y, c=c: tf.equal(y, c))
             .shuffle(max(1, int((labels == c).sum())), seed=seed + c).repeat()
             for c in present]
    return tf.data.Dataset.sample_from_datasets(
        parts, weights=[1.0 / len(present)] * len(present), seed=seed)


def make_dataset(frame: pd.DataFrame, *, image_size: tuple[int, int], batch_size: int,
                 training: bool = False, augment: bool = True, balance: str = "none",
                 n_classes: int | None = None, seed: int = 0, cache: bool = True,
                 cache_dir=None, resize: str = image_cache.DEFAULT_RESIZE, output: str = "float32",
                 with_labels: bool = True, progress: bool = True) -> tf.data.Dataset:
    """A batched dataset of ``(images, labels int32)`` for a catalog frame.

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
        cache: read the images from the decoded-image cache (:mod:`skinlib.image_cache`),
            decoding those it lacks once; ``False`` decodes on every pass and writes nothing.
        cache_dir: the cache folder (default ``$SKINLIB_CACHE_DIR`` or ``~/.cache/skinlib``).
        resize: a method of :data:`skinlib.image_cache.RESIZE_METHODS` (default ``area``).
        output: ``float32`` batches in [0, 255], augmented here when training; ``uint8``
            batches, never augmented here (put an :class:`Augment` layer in the model).
        with_labels: ``False`` yields images only (for ``predict``).
        progress: show a progress bar while images are decoded into the cache.
    """
    if balance not in BALANCE_MODES:
        raise ValueError(f"balance={balance!r}: use one of {BALANCE_MODES}")
    if output not in OUTPUTS:
        raise ValueError(f"output={output!r}: use one of {OUTPUTS}")
    _check_frame(frame, training)
    size = tuple(int(s) for s in image_size)
    ds, to_images = _source(frame, size, cache, cache_dir, resize, progress)
    if training:
        labels = frame["label"].astype("int32").to_numpy()
        ds = _shuffle_or_balance(ds, labels, balance, n_classes, seed)
    ds = ds.batch(batch_size, num_parallel_calls=AUTOTUNE, deterministic=True)
    ds = ds.map(lambda x, y: (to_images(x), y), num_parallel_calls=AUTOTUNE, deterministic=True)
    if output == "float32":
        ds = _as_float(ds, augment=training and augment, seed=seed)
    if not with_labels:
        ds = ds.map(lambda x, y: x)
    return ds.prefetch(AUTOTUNE)


def _as_float(ds: tf.data.Dataset, *, augment: bool, seed: int) -> tf.data.Dataset:
    """Batches as float32 in [0, 255], augmented with a fresh seed per batch and epoch."""
    if not augment:
        return ds.map(lambda x, y: (tf.cast(x, tf.float32), y), num_parallel_calls=AUTOTUNE)
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
    return tf.data.Dataset.zip(ds, seeds).map(
        lambda xy, sd: (augment_batch(xy[0], sd), xy[1]), num_parallel_calls=AUTOTUNE,
        deterministic=True)


def steps_per_epoch(frame: pd.DataFrame, batch_size: int) -> int:
    """Batches per epoch for an endless (resampled) dataset: one pass over the frame's size."""
    return max(1, math.ceil(len(frame) / batch_size))


def load_array(frame: pd.DataFrame, image_size: tuple[int, int], *, cache: bool = True,
               cache_dir=None, resize: str = image_cache.DEFAULT_RESIZE) -> tuple[np.ndarray, np.ndarray]:
    """A frame's images as one uint8 array ``(n, h, w, 3)`` (from the image cache) and labels."""
    _check_frame(frame, training=False)
    size = tuple(int(s) for s in image_size)
    labels = frame["label"].astype("int32").to_numpy()
    if cache:
        return image_cache.load_images(frame["path"], size, resize, cache_dir=cache_dir), labels
    ds = _source(frame, size, False, None, resize, False)[0].batch(1024)
    return np.concatenate([x for x, _ in ds.as_numpy_iterator()]), labels
