"""Image plus metadata (notebook 10): the baseline CNN's trunk and a small tabular branch,
joined before the softmax.

The image branch is :func:`skinlib.models.cnn.build_cnn` itself, cut after its head dropout, so
the metadata model and the image-only baseline share every image layer; the only additions are
a dense layer on the metadata vector and a wider softmax layer over both.
"""

from __future__ import annotations

import keras
from keras import layers

from skinlib.models.cnn import build_cnn

IMAGE_FEATURES = "head_drop"  # build_cnn's last layer before the softmax


def build_fusion(image_size: tuple[int, int], n_meta: int, n_classes: int, *, arch: str = "seed",
                 meta_units: int = 32, dropout: float = 0.25) -> keras.Model:
    """A two-input classifier: ``{"image": RGB in [0, 255], "meta": (n_meta,) floats}``.

    Args:
        image_size: (height, width) of the input images.
        n_meta: length of the metadata vector (:attr:`skinlib.metadata.MetaEncoder.feature_names`).
        n_classes: number of output classes (softmax).
        arch, dropout: the CNN trunk's (:func:`skinlib.models.cnn.build_cnn`).
        meta_units: width of the metadata branch (Dense + ReLU).
    """
    if int(n_meta) < 1:
        raise ValueError(f"n_meta={n_meta}: the metadata vector needs at least one entry")
    cnn = build_cnn(image_size, n_classes, arch=arch, dropout=dropout)
    image_features = cnn.get_layer(IMAGE_FEATURES).output
    meta = keras.Input((int(n_meta),), name="meta")
    m = layers.Dense(meta_units, name="meta_dense")(meta)
    m = layers.ReLU(name="meta_relu")(m)
    x = layers.Concatenate(name="fusion")([image_features, m])
    outputs = layers.Dense(n_classes, activation="softmax", dtype="float32", name="probs")(x)
    return keras.Model({"image": cnn.input, "meta": meta}, outputs, name=f"fusion_{arch}")
