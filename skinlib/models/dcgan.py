"""DCGAN for one lesion class (notebook 03): generator, discriminator, DiffAugment, train step.

The generator maps a latent vector to a ``tanh`` RGB image in [-1, 1]; the discriminator is a
linear stack of Conv + LeakyReLU + Dropout blocks (the last one named ``disc_features``), then
Flatten and one logit. Its convolutional part has no fixed size, so another model can reuse
the trunk on images of any shape. :class:`DCGAN` trains both with its own ``train_step``, so
``fit``, callbacks and progress bars work as for any Keras model.

DiffAugment (Zhao et al., NeurIPS 2020) applies the same random, differentiable augmentation
to real and generated images before the discriminator sees them; with ~80 training images a
class, it keeps the discriminator from memorising the real set.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf
from keras import layers

DIFFAUGMENT_POLICIES = ("color", "translation", "cutout")


def _n_upsamples(size: int) -> int:
    """How many stride-2 steps lead from 4x4 to ``size``; refuses sizes that are not 2^k >= 8."""
    n = math.log2(size / 4) if size > 0 else -1
    if size < 8 or n != int(n):
        raise ValueError(f"GAN image size {size} must be a power of two >= 8 (e.g. 32, 64, 128)")
    return int(n)


def build_generator(size: int, latent_dim: int = 100, filters: int = 256) -> keras.Model:
    """Latent vector -> ``tanh`` RGB image of shape ``(size, size, 3)`` in [-1, 1].

    Dense -> 4x4 feature map -> Conv2DTranspose(stride 2) + BatchNorm + ReLU blocks, halving
    the filters each time (starting at ``filters``) -> Conv2DTranspose to 3 channels, tanh.
    """
    n_up = _n_upsamples(size)
    z = keras.Input((latent_dim,), name="latent")
    x = layers.Dense(4 * 4 * filters, use_bias=False, name="project")(z)
    x = layers.BatchNormalization(name="project_bn")(x)
    x = layers.ReLU(name="project_relu")(x)
    x = layers.Reshape((4, 4, filters), name="reshape")(x)
    f = filters
    for i in range(n_up - 1):
        f = max(8, f // 2)
        x = layers.Conv2DTranspose(f, 4, strides=2, padding="same", use_bias=False,
                                   name=f"up{i + 1}_deconv")(x)
        x = layers.BatchNormalization(name=f"up{i + 1}_bn")(x)
        x = layers.ReLU(name=f"up{i + 1}_relu")(x)
    out = layers.Conv2DTranspose(3, 4, strides=2, padding="same", activation="tanh",
                                 name="image")(x)
    return keras.Model(z, out, name="generator")


def build_discriminator(size: int, filters: int = 256, dropout: float = 0.3) -> keras.Model:
    """RGB image in [-1, 1] of shape ``(size, size, 3)`` -> one real/fake logit.

    A linear stack: Conv(stride 2) + LeakyReLU(0.2) + Dropout blocks down to 4x4 (filters
    doubling up to ``filters``), the last block's dropout named ``disc_features``, then
    Flatten and Dense(1). Nothing before ``disc_features`` depends on the image size.
    """
    n_down = _n_upsamples(size)
    widths = [max(8, filters // 2 ** (n_down - 1 - i)) for i in range(n_down)]
    inputs = keras.Input((size, size, 3), name="image")
    x = inputs
    for i, f in enumerate(widths):
        last = i == n_down - 1
        x = layers.Conv2D(f, 4, strides=2, padding="same", name=f"down{i + 1}_conv")(x)
        x = layers.LeakyReLU(0.2, name=f"down{i + 1}_lrelu")(x)
        x = layers.Dropout(dropout, name="disc_features" if last else f"down{i + 1}_drop")(x)
    x = layers.Flatten(name="flatten")(x)
    out = layers.Dense(1, name="logit")(x)
    return keras.Model(inputs, out, name="discriminator")


def parse_policy(diffaugment) -> tuple[str, ...]:
    """``True`` -> every policy, ``False``/``None``/"" -> none, ``"color,cutout"`` -> those."""
    if diffaugment is True:
        return DIFFAUGMENT_POLICIES
    if not diffaugment:
        return ()
    parts = diffaugment.split(",") if isinstance(diffaugment, str) else list(diffaugment)
    parts = tuple(p.strip() for p in parts if p.strip())
    unknown = sorted(set(parts) - set(DIFFAUGMENT_POLICIES))
    if unknown:
        raise ValueError(f"unknown DiffAugment policy {unknown}: use {DIFFAUGMENT_POLICIES}")
    return parts


def _color(x, seed):
    """Random brightness, saturation and contrast per image (x in [-1, 1])."""
    b = tf.shape(x)[0]
    s = keras.random.randint((3,), 0, 2**30, seed=seed)
    bright = tf.random.stateless_uniform((b, 1, 1, 1), s[:2], -0.5, 0.5)
    x = x + bright
    mean_c = tf.reduce_mean(x, axis=3, keepdims=True)
    sat = tf.random.stateless_uniform((b, 1, 1, 1), s[1:], 0.0, 2.0)
    x = (x - mean_c) * sat + mean_c
    mean_all = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
    con = tf.random.stateless_uniform((b, 1, 1, 1), tf.stack([s[0], s[2]]), 0.5, 1.5)
    return (x - mean_all) * con + mean_all


def _translation(x, seed, ratio: float = 0.125):
    """Shift each image by up to ``ratio`` of its size, filling with zeros."""
    b, h, w = tf.shape(x)[0], tf.shape(x)[1], tf.shape(x)[2]
    ph = tf.cast(tf.cast(h, tf.float32) * ratio + 0.5, tf.int32)
    pw = tf.cast(tf.cast(w, tf.float32) * ratio + 0.5, tf.int32)
    dy = keras.random.randint((b, 1), -ph, ph + 1, seed=seed)
    dx = keras.random.randint((b, 1), -pw, pw + 1, seed=seed)
    padded = tf.pad(x, [[0, 0], [ph, ph], [pw, pw], [0, 0]])
    rows = tf.clip_by_value(tf.range(h)[None, :] + dy + ph, 0, h + 2 * ph - 1)
    cols = tf.clip_by_value(tf.range(w)[None, :] + dx + pw, 0, w + 2 * pw - 1)
    x = tf.gather(padded, rows, axis=1, batch_dims=1)
    return tf.gather(x, cols, axis=2, batch_dims=1)


def _cutout(x, seed, ratio: float = 0.5):
    """Zero one random rectangle of ``ratio`` x the image size in each image."""
    b, h, w = tf.shape(x)[0], tf.shape(x)[1], tf.shape(x)[2]
    ch = tf.cast(tf.cast(h, tf.float32) * ratio + 0.5, tf.int32)
    cw = tf.cast(tf.cast(w, tf.float32) * ratio + 0.5, tf.int32)
    cy = keras.random.randint((b, 1, 1), 0, h + (1 - ch % 2), seed=seed)
    cx = keras.random.randint((b, 1, 1), 0, w + (1 - cw % 2), seed=seed)
    yy = tf.range(h)[None, :, None]
    xx = tf.range(w)[None, None, :]
    inside = (tf.abs(yy - cy) < ch // 2 + 1) & (tf.abs(xx - cx) < cw // 2 + 1)
    keep = tf.cast(tf.logical_not(inside), x.dtype)
    return x * keep[..., None]


def diff_augment(x, policy, seed):
    """Apply the DiffAugment ``policy`` (a tuple of names) to a batch; differentiable in x."""
    fns = {"color": _color, "translation": _translation, "cutout": _cutout}
    for name in policy:
        x = fns[name](x, seed)
    return x


class DCGAN(keras.Model):
    """Generator and discriminator trained together; ``fit`` on batches of real images in [-1, 1].

    Args:
        generator, discriminator: models from :func:`build_generator` / :func:`build_discriminator`.
        latent_dim: length of the latent vector.
        label_smoothing: real labels become ``1 - label_smoothing`` for the discriminator.
        diffaugment: ``True`` (color, translation, cutout), ``False`` or a comma list.
        seed: seed of the latent and augmentation draws.
    """

    def __init__(self, generator, discriminator, latent_dim: int = 100,
                 label_smoothing: float = 0.1, diffaugment=True, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.generator = generator
        self.discriminator = discriminator
        self.latent_dim = int(latent_dim)
        self.label_smoothing = float(label_smoothing)
        self.policy = parse_policy(diffaugment)
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.trackers = {k: keras.metrics.Mean(name=k)
                         for k in ("d_loss", "g_loss", "d_real", "d_fake")}

    def compile(self, g_optimizer=None, d_optimizer=None, **kwargs):
        """Adam(2e-4, beta_1=0.5) for both networks unless others are given."""
        super().compile(**kwargs)
        self.g_optimizer = g_optimizer or keras.optimizers.Adam(2e-4, beta_1=0.5)
        self.d_optimizer = d_optimizer or keras.optimizers.Adam(2e-4, beta_1=0.5)

    def build_optimizers(self) -> None:
        """Create the optimizer slots now (needed before restoring a checkpoint)."""
        self.g_optimizer.build(self.generator.trainable_variables)
        self.d_optimizer.build(self.discriminator.trainable_variables)

    @property
    def metrics(self):
        return list(self.trackers.values())

    def call(self, z, training=False):
        return self.generator(z, training=training)

    def _augment(self, x):
        return diff_augment(x, self.policy, self.seed_generator) if self.policy else x

    def train_step(self, data):
        """One simultaneous update of both networks from a single forward pass.

        Real and generated images go through DiffAugment and the discriminator as one batch
        (the discriminator has no batch statistics, so this changes nothing but speed).
        """
        real = data[0] if isinstance(data, tuple) else data
        real = tf.cast(real, "float32")
        batch = tf.shape(real)[0]
        bce = keras.losses.BinaryCrossentropy(from_logits=True)
        z = keras.random.normal((batch, self.latent_dim), seed=self.seed_generator)
        with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
            fake = self.generator(z, training=True)
            logits = self.discriminator(self._augment(tf.concat([real, fake], 0)),
                                        training=True)
            logit_real, logit_fake = logits[:batch], logits[batch:]
            target_real = tf.ones_like(logit_real) * (1.0 - self.label_smoothing)
            d_loss = bce(target_real, logit_real) + bce(tf.zeros_like(logit_fake), logit_fake)
            g_loss = bce(tf.ones_like(logit_fake), logit_fake)
        d_vars = self.discriminator.trainable_variables
        g_vars = self.generator.trainable_variables
        d_grads = d_tape.gradient(d_loss, d_vars)
        g_grads = g_tape.gradient(g_loss, g_vars)
        self.d_optimizer.apply_gradients(zip(d_grads, d_vars))
        self.g_optimizer.apply_gradients(zip(g_grads, g_vars))
        values = {"d_loss": d_loss, "g_loss": g_loss,
                  "d_real": tf.reduce_mean(tf.sigmoid(logit_real)),
                  "d_fake": tf.reduce_mean(tf.sigmoid(logit_fake))}
        for k, v in values.items():
            self.trackers[k].update_state(v)
        return {k: t.result() for k, t in self.trackers.items()}

    def state_variables(self) -> list:
        """Every variable a resumable checkpoint must hold, in a fixed order."""
        return (list(self.generator.weights) + list(self.discriminator.weights)
                + list(self.g_optimizer.variables) + list(self.d_optimizer.variables)
                + [self.seed_generator.state])
