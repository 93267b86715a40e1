"""The ResNet50 transfer model of notebook 06 and which of its layers each stage trains.

The model is one flat functional graph: raw RGB in [0, 255] -> ``resnet50.preprocess_input``
(RGB -> BGR and the ImageNet channel means, written as a fixed ``Dense`` on the channel axis so
``keras.models.load_model`` reads it in safe mode without skinlib) -> the ResNet50 layers ->
GlobalAveragePooling -> BatchNorm -> Dense 256 ReLU -> Dropout 0.4 -> softmax. Flat, so
Grad-CAM tools reach ``conv5_block3_out`` directly.

:func:`set_stage` makes the layers of a training stage trainable. With pretrained weights:
stage 1 the head on a frozen base; stage 2 the base from layer ``unfreeze_from`` on, with every
BatchNormalization layer kept frozen, i.e. in inference mode, so the small batches of fine-tuning
do not wreck the ImageNet statistics. Without them (stage 0, "from scratch"): every layer trains,
BatchNormalization included (in training mode, so it learns its statistics). The training
itself is :mod:`skinlib.training.transfer`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from skinlib import pretrained
from skinlib.models import mixed_policy

WEIGHTS_ENV = "SKINLIB_RESNET50_WEIGHTS"
NOTOP_FILE = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
IMAGENET_BGR_MEAN = (103.939, 116.779, 123.68)
PREPROCESS_LAYER = "resnet50_preprocess"  # fixed RGB -> BGR and ImageNet means; never trains
FIRST_BASE_LAYER = "conv1_pad"
LAST_BASE_LAYER = "conv5_block3_out"


class WeightsError(RuntimeError):
    """The requested ResNet50 weights cannot be found or downloaded."""


def resolve_weights(value=None, overrides: dict | None = None):
    """The weights to build with: ``"imagenet"``, ``None`` or an existing file path.

    Args:
        value: the profile's ``transfer_weights`` (``"imagenet"``, ``None``, ``"none"`` or a
            path). ``$SKINLIB_RESNET50_WEIGHTS`` (a file) replaces ``"imagenet"``.
        overrides: a notebook's overrides; ``{"transfer_weights": None}`` (what
            ``--set transfer_weights=none`` gives) means no pretrained weights, because the
            profile itself ignores ``None`` overrides.
    """
    if overrides and "transfer_weights" in overrides:
        value = overrides["transfer_weights"]
    if value is None or str(value).strip().lower() in ("", "none", "null", "random"):
        return None
    value = str(value).strip()
    if value == "imagenet":
        env = os.environ.get(WEIGHTS_ENV)
        return _existing(env, f"${WEIGHTS_ENV}") if env else "imagenet"
    return _existing(value, "transfer_weights")


def _existing(path: str, what: str) -> str:
    """``path`` if it is a file, else a WeightsError naming it."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise WeightsError(f"{what}={path!r}: no such weights file; pass the path of "
                           f"{NOTOP_FILE} (or a .weights.h5 of ResNet50 without top), or "
                           "transfer_weights=None to train from scratch")
    return str(p)


def _no_imagenet_message() -> str:
    return (f"ImageNet weights for ResNet50 cannot be downloaded here (no internet) and are "
            f"not in the Keras cache: download {NOTOP_FILE} elsewhere and pass its path with "
            f"--set transfer_weights=PATH or ${WEIGHTS_ENV}=PATH, or use "
            "--set transfer_weights=none to train from scratch")


def _load_base_weights(model, weights: str, image_size) -> None:
    """Copy ImageNet (or file) weights into the flat model's ResNet50 layers, by name."""
    import keras

    if weights == "imagenet" and not pretrained.available(NOTOP_FILE):
        raise WeightsError(_no_imagenet_message())
    try:
        ref = keras.applications.ResNet50(include_top=False, weights=weights,
                                          input_shape=(*image_size, 3))
    except WeightsError:
        raise
    except Exception as err:  # Keras raises a bare Exception on URL failures
        if weights == "imagenet":
            raise WeightsError(_no_imagenet_message()) from None
        raise WeightsError(f"cannot load ResNet50 weights from {weights}: {err}; pass a "
                           f"{NOTOP_FILE}-style file or transfer_weights=None") from None
    for layer in ref.layers:
        if layer.weights:
            model.get_layer(layer.name).set_weights(layer.get_weights())


def build_resnet50(image_size: tuple[int, int], n_classes: int, *, weights="imagenet",
                   mixed_precision: bool | None = None, dropout: float = 0.4,
                   dense_units: int = 256):
    """ResNet50 with preprocessing inside and the seed work's head, ready for its first stage.

    Args:
        image_size: (height, width); ResNet50 needs at least 32 px on each side.
        n_classes: softmax outputs.
        weights: ``"imagenet"``, ``None`` or a weights file (see :func:`resolve_weights`).
        mixed_precision: ``True`` computes in float16; ``None`` (default) or ``False`` keeps
            the dtype policy in force, which :func:`skinlib.training.fit.build_scope` (where
            the trainer builds it) sets to ``mixed_float16`` on a GPU. The output layer stays
            float32.
        dropout, dense_units: the head.

    Returns:
        A functional model: with weights, ``resnet50_transfer`` with the base frozen (stage 1);
        with ``weights=None``, ``resnet50_scratch`` with every layer trainable (stage 0).

    Raises:
        WeightsError: ImageNet weights unavailable (one line saying what to pass instead).
    """
    import keras
    from keras import layers

    if min(image_size) < 32:
        raise ValueError(f"image_size={tuple(image_size)}: ResNet50 needs at least 32x32")
    if weights not in (None, "imagenet"):
        weights = _existing(str(weights), "weights")
    with mixed_policy(bool(mixed_precision)):
        inputs = keras.Input((*image_size, 3), name="image")
        pre = layers.Dense(3, trainable=False, dtype="float32", name=PREPROCESS_LAYER)
        x = pre(inputs)
        perm = np.eye(3, dtype="float32")[:, ::-1]  # RGB -> BGR
        pre.set_weights([perm, -np.asarray(IMAGENET_BGR_MEAN, dtype="float32")])
        base = keras.applications.ResNet50(include_top=False, weights=None, input_tensor=x)
        h = layers.GlobalAveragePooling2D(name="head_gap")(base.output)
        h = layers.BatchNormalization(name="head_bn")(h)
        h = layers.Dense(dense_units, activation="relu", name="head_dense")(h)
        h = layers.Dropout(dropout, name="head_drop")(h)
        outputs = layers.Dense(n_classes, activation="softmax", dtype="float32",
                               name="probs")(h)
        model = keras.Model(inputs, outputs, name="resnet50_transfer" if weights is not None
                            else "resnet50_scratch")
    if weights is not None:
        _load_base_weights(model, weights, image_size)
    set_stage(model, 1 if weights is not None else 0)
    return model


def base_layers(model) -> list:
    """The ResNet50 layers of a transfer model, from ``conv1_pad`` to ``conv5_block3_out``."""
    names = [layer.name for layer in model.layers]
    try:
        first, last = names.index(FIRST_BASE_LAYER), names.index(LAST_BASE_LAYER)
    except ValueError:
        raise ValueError(f"model {model.name!r} has no ResNet50 base ({FIRST_BASE_LAYER} .. "
                         f"{LAST_BASE_LAYER}): build it with build_resnet50") from None
    return model.layers[first:last + 1]


def set_stage(model, stage: int, unfreeze_from: int = 100) -> None:
    """Make the right layers trainable for a stage.

    Stage 0 (from scratch, no pretrained weights): every layer trainable, BatchNormalization
    included, so it runs in training mode and updates its moving statistics. Stage 1: the whole
    base frozen, the head trainable. Stage 2: base layers from index ``unfreeze_from`` on
    trainable (indexed as in ``ResNet50(include_top=False).layers``, whose index 0 is the input
    layer), every BatchNormalization layer of the base frozen (inference mode). The
    preprocessing layer never trains.
    """
    from keras import layers

    if stage not in (0, 1, 2):
        raise ValueError(f"stage={stage}: use 0 (from scratch), 1 or 2")
    base = base_layers(model)
    in_base = {id(layer) for layer in base}
    model.trainable = True
    for layer in model.layers:
        if id(layer) not in in_base:
            layer.trainable = layer.name != PREPROCESS_LAYER and bool(layer.weights)
    for i, layer in enumerate(base, start=1):
        layer.trainable = stage == 0 or (stage == 2 and i >= unfreeze_from
                                         and not isinstance(layer, layers.BatchNormalization))
