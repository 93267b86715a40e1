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


def _reflect(coord: tf.Tensor, size: tf.Tensor) -> tf.Tensor:
    """Coordinates folded into ``[0, size - 1]`` by mirroring about the outer pixel edges
    (``d c b a | a b c d | d c b a``), then clamped: TensorFlow's ``REFLECT`` fill mode."""
    period = 2.0 * size
    coord = tf.math.floormod(coord, period)
    coord = tf.where(coord >= size, period - coord - 1.0, coord)
    return tf.clip_by_value(coord, 0.0, size - 1.0)


def affine_warp(images: tf.Tensor, affine: tf.Tensor) -> tf.Tensor:
    """Warp a float batch ``(n, h, w, c)`` by one affine map per image, reflect fill, bilinear.

    ``affine`` is ``(n, 6)``: ``[a0, a1, a2, b0, b1, b2]`` maps output pixel ``(x, y)`` to the
    input point ``(a0 x + a1 y + a2, b0 x + b1 y + b2)``, as the first six numbers of
    ``tf.raw_ops.ImageProjectiveTransformV3``'s transforms. Written with gathers, which XLA
    compiles (that op has no XLA kernel), so a model holding :class:`Augment` can be
    ``jit_compile``-d on a GPU.
    """
    shape = tf.shape(images)
    n, h, w, c = shape[0], shape[1], shape[2], shape[3]
    hf, wf = tf.cast(h, tf.float32), tf.cast(w, tf.float32)
    ys, xs = tf.meshgrid(tf.range(hf), tf.range(wf), indexing="ij")
    xs, ys = tf.reshape(xs, [1, -1]), tf.reshape(ys, [1, -1])
    a = affine[:, :, None]
    in_x = _reflect(a[:, 0] * xs + a[:, 1] * ys + a[:, 2], wf)
    in_y = _reflect(a[:, 3] * xs + a[:, 4] * ys + a[:, 5], hf)
    x0, y0 = tf.floor(in_x), tf.floor(in_y)
    wx, wy = (in_x - x0)[..., None], (in_y - y0)[..., None]
    x0, y0 = tf.cast(x0, tf.int32), tf.cast(y0, tf.int32)
    x1, y1 = tf.minimum(x0 + 1, w - 1), tf.minimum(y0 + 1, h - 1)
    flat = tf.reshape(images, [n, h * w, c])

    def pick(yy, xx):
        return tf.gather(flat, yy * w + xx, batch_dims=1)

    top = pick(y0, x0) * (1.0 - wx) + pick(y0, x1) * wx
    bottom = pick(y1, x0) * (1.0 - wx) + pick(y1, x1) * wx
    return tf.reshape(top * (1.0 - wy) + bottom * wy, shape)


def augment_batch(images: tf.Tensor, seed: tf.Tensor, *, rotation: float = 0.1,
                  zoom: float = 0.1, brightness: float = 0.1, contrast: float = 0.1,
                  xla: bool = False) -> tf.Tensor:
    """The training augmentation of seed work (flips, rotation, zoom, brightness, contrast),
    fused into one warp and one multiply-add, on a batch in [0, 255] (uint8 or float; the
    result is float32).

    Flips, rotation (up to ``rotation`` of a turn), zoom (up to ``zoom`` in or out) are one
    projective transform per image (reflect fill, bilinear), then brightness (up to
    ``brightness`` x 255 added) and contrast (deviation from the image mean scaled by up to
    ``1 +- contrast``). Random draws are stateless from ``seed`` (shape ``[2]``), so a seeded
    pipeline is reproducible. ``xla=True`` warps with :func:`affine_warp` (gathers, which XLA
    compiles; the same pixels to 1e-3 grey levels) instead of TensorFlow's projective-transform
    op (no XLA kernel, but twice as fast on a CPU: the pipeline uses it).
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
    affine = tf.stack([a0, a1, cx - a0 * cx - a1 * cy, b0, b1, cy - b0 * cx - b1 * cy], axis=1)
    if xla:
        x = affine_warp(tf.cast(images, tf.float32), affine)
    else:
        x = tf.cast(tf.raw_ops.ImageProjectiveTransformV3(
            images=images, transforms=tf.pad(affine, [[0, 0], [0, 2]]),
            output_shape=tf.stack([h, w]), fill_value=0.0, interpolation="BILINEAR",
            fill_mode="REFLECT"), tf.float32)
    # brightness b then contrast f about the mean m: ((x + b) - (m + b)) f + m + b
    # = x f + m (1 - f) + b, one multiply-add per pixel.
    b = ((2.0 * u[:, 4] - 1.0) * brightness * 255.0)[:, None, None, None]
    f = (1.0 + (2.0 * u[:, 5] - 1.0) * contrast)[:, None, None, None]
    mean = tf.reduce_mean(x, axis=[1, 2], keepdims=True)
    return tf.clip_by_value(x * f + (mean * (1.0 - f) + b), 0.0, 255.0)


@keras.saving.register_keras_serializable(package="skinlib")
class Augment(keras.layers.Layer):
    """:func:`augment_batch` as a Keras layer, so augmentation runs where the model runs.

    :func:`with_augment` puts it in front of a model fed ``make_dataset(..., output="uint8")``
    batches; when not training it only casts to float32. Its warp compiles under XLA.
    ``ranges``: ``rotation``, ``zoom``, ``brightness``, ``contrast`` (each 0.1 unless given),
    as in :func:`augment_batch`.
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
        return augment_batch(images, seed, xla=True, **self.ranges)

    def compute_output_shape(self, input_shape):
        """Same shape as the input."""
        return input_shape

    def get_config(self):
        """Seed and ranges, for saving."""
        return {**super().get_config(), "seed": self.seed, **self.ranges}


def image_input(model):
    """The model's image input: the one named ``image``, else its only 4-D input."""
    named = [t for t in model.inputs if t.name == "image"]
    images = named or [t for t in model.inputs if len(t.shape) == 4]
    if len(images) != 1:
        raise ValueError(f"{model.name}: cannot tell which input is the image "
                         f"({[t.name for t in model.inputs]}); name it 'image'")
    return images[0]


def with_augment(model, seed: int = 0, **ranges):
    """``model`` with an :class:`Augment` layer between its image input and the first layers
    that read it: a flat functional model that shares ``model``'s layers and weights, so
    training it trains ``model`` (which is what gets saved: no skinlib layer in the file).

    Feed it ``make_dataset(..., output="uint8")`` batches: they reach the device as uint8 and
    are augmented there; its warp compiles under XLA. Other inputs (metadata) pass unchanged.
    """
    image = image_input(model)
    inputs = [keras.Input(batch_shape=t.shape, dtype=t.dtype, name=t.name) for t in model.inputs]
    new_image = inputs[model.inputs.index(image)]
    augmented = Augment(seed, name="augment", **ranges)(new_image)

    def call(layer, *args, **kwargs):
        swap = lambda t: augmented if t is new_image else t  # noqa: E731
        return layer(*keras.tree.map_structure(swap, args),
                     **keras.tree.map_structure(swap, kwargs))

    structure = keras.tree.pack_sequence_as(model.input, inputs)
    return keras.models.clone_model(model, input_tensors=structure,
                                    clone_function=lambda layer: layer, call_function=call)


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
