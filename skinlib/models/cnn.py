"""Baseline CNNs (notebook 02): the seed architecture and global-average-pooling variants.

All are flat functional models taking RGB in [0, 255] (rescaling is the first layer), so
Grad-CAM tools can reach every layer.
"""

from __future__ import annotations

import keras
from keras import layers

ARCHS = ("seed", "gap", "gap1", "narrow", "sep", "sep2")
# widths of the convolution blocks of the global-average-pooling architectures
WIDTHS = {"gap": (32, 64, 128, 256), "gap1": (32, 64, 128, 256), "narrow": (16, 32, 64, 128),
          "sep": (32, 64, 128, 256), "sep2": (32, 64, 128, 256)}


def _conv_block(x, filters: int, dropout: float, name: str, convs: int = 1,
                bn_momentum: float = 0.9, separable: bool = False, stride: int = 1):
    """Conv -> BatchNorm -> ReLU (``convs`` times) -> MaxPool -> Dropout.

    ``separable`` uses depthwise-separable convolutions; ``stride=2`` downsamples in the
    convolution itself and drops the max-pooling.
    """
    conv = layers.SeparableConv2D if separable else layers.Conv2D
    for i in range(convs):
        x = conv(filters, 3, strides=stride if i == 0 else 1, padding="same", use_bias=False,
                 name=f"{name}_conv{i + 1}")(x)
        x = layers.BatchNormalization(momentum=bn_momentum, name=f"{name}_bn{i + 1}")(x)
        x = layers.ReLU(name=f"{name}_relu{i + 1}")(x)
    if stride == 1:
        x = layers.MaxPooling2D(2, name=f"{name}_pool")(x)
    return layers.Dropout(dropout, name=f"{name}_drop")(x)


def build_cnn(image_size: tuple[int, int], n_classes: int, *, arch: str = "seed",
              dropout: float = 0.25, dense_units: int = 512, l2: float = 0.0) -> keras.Model:
    """A baseline classifier.

    Args:
        image_size: (height, width) of the input images.
        n_classes: number of output classes (softmax).
        arch: ``seed`` — three blocks Conv(32/64/128)+BatchNorm+ReLU+MaxPool+Dropout, Flatten,
            Dense 512+BatchNorm+Dropout, softmax (the seed work's baseline); ``gap`` — four
            blocks of two convolutions (32/64/128/256), global average pooling, softmax: fewer
            parameters and better on small images; ``gap1`` — ``gap`` with one convolution a
            block: a third of the multiply-adds, 2.67x the training images/s of gap on this CPU;
            ``narrow`` — ``gap1`` at half the width (16/32/64/128); ``sep`` — ``gap1``'s widths
            and grid, but the first convolution has stride 2 (no full-resolution feature map,
            whose memory-bound BatchNorm/ReLU/pooling cost as much as the convolutions) and
            blocks 2-4 are depthwise-separable (a depthwise 3x3 and a pointwise 1x1, as in
            MobileNet); ``sep2`` — ``sep`` with two separable convolutions in each of blocks
            2-4 (as in Xception). The README's Speed section has each one's training speed
            and its balanced accuracy on HAM10000.
        dropout: dropout after each block (the head uses twice this, at most 0.5).
        dense_units: width of the seed head's dense layer.
        l2: L2 weight decay on the dense layers.
    """
    if arch not in ARCHS:
        raise ValueError(f"arch={arch!r}: use one of {ARCHS}")
    reg = keras.regularizers.l2(l2) if l2 else None
    inputs = keras.Input((*image_size, 3), name="image")
    x = layers.Rescaling(1.0 / 255, name="rescale")(inputs)
    if arch == "seed":
        for i, f in enumerate((32, 64, 128)):
            x = _conv_block(x, f, dropout, f"block{i + 1}")
        x = layers.Flatten(name="flatten")(x)
        x = layers.Dense(dense_units, use_bias=False, kernel_regularizer=reg, name="dense")(x)
        x = layers.BatchNormalization(momentum=0.9, name="dense_bn")(x)
        x = layers.ReLU(name="dense_relu")(x)
    else:
        for i, f in enumerate(WIDTHS[arch]):
            x = _conv_block(x, f, dropout if i < 3 else 0.0, f"block{i + 1}",
                            convs=2 if arch == "gap" or (arch == "sep2" and i > 0) else 1,
                            separable=arch in ("sep", "sep2") and i > 0,
                            stride=2 if arch in ("sep", "sep2") and i == 0 else 1)
        x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dropout(min(0.5, 2 * dropout), name="head_drop")(x)
    outputs = layers.Dense(n_classes, activation="softmax", kernel_regularizer=reg,
                           dtype="float32", name="probs")(x)
    return keras.Model(inputs, outputs, name=f"cnn_{arch}")
