"""Class-expert fusion (notebook 05): the DCGAN discriminators of notebook 03 as feature
extractors, fused with a small trainable CNN.

Each minority class's discriminator learnt what real images of that class look like; its
convolutional trunk (every layer up to ``disc_features``) is a "class expert". The fused model
copies each trunk into one flat functional graph (so Grad-CAM tools reach every layer), pools
each to a vector, adds a trainable CNN branch that covers the classes without a GAN (``nv``,
``bkl``) and learns what the experts miss, then Dense + L2 -> Dropout -> softmax over every
class. The expert trunks are frozen in stage 1; :func:`set_experts_trainable` opens them for a
short, low-learning-rate stage 2.

Layer names: expert layers are ``expert_<dx>_<original name>``, the CNN branch ``cnn_*``, the
head ``fused_*`` and ``probs``.
"""

from __future__ import annotations

from pathlib import Path

import keras
import pandas as pd
from keras import layers

FEATURES_LAYER = "disc_features"
EXPERT_PREFIX = "expert_"


def discriminator_path(run, dx: str) -> Path:
    """Where notebook 03 saves the discriminator of class ``dx``."""
    return Path(run.models) / "gan" / dx / "discriminator.keras"


def load_discriminators(run, classes) -> dict[str, keras.Model]:
    """The saved discriminators of ``classes`` (dx -> model), or an error naming notebook 03."""
    from skinlib.gan import load_discriminator

    out = {}
    for dx in classes:
        run.require(discriminator_path(run, dx).relative_to(run.root).as_posix(), "03",
                    hint=f"or leave {dx!r} out of the expert classes")
        out[dx] = load_discriminator(run, dx)
    return out


def _trunk_layers(disc: keras.Model, dx: str) -> list:
    """The discriminator's layers from the input up to and including ``disc_features``."""
    names = [lyr.name for lyr in disc.layers]
    if FEATURES_LAYER not in names:
        raise ValueError(f"the discriminator of {dx!r} has no layer named {FEATURES_LAYER!r} "
                         f"(layers: {names}); rebuild it with skinlib.models.dcgan")
    out = []
    for lyr in disc.layers:
        if isinstance(lyr, keras.layers.InputLayer):
            continue
        out.append(lyr)
        if lyr.name == FEATURES_LAYER:
            break
    return out


def _copy_trunk(x, disc: keras.Model, dx: str, trainable: bool):
    """Re-create the discriminator's trunk on tensor ``x`` with prefixed names and its weights."""
    for src in _trunk_layers(disc, dx):
        config = src.get_config()
        config["name"] = f"{EXPERT_PREFIX}{dx}_{src.name}"
        new = src.__class__.from_config(config)
        x = new(x)
        new.set_weights(src.get_weights())
        new.trainable = trainable
    return x


def _cnn_branch(x, filters: tuple[int, ...], dropout: float):
    """Conv -> BatchNorm -> ReLU -> MaxPool blocks, then global average pooling."""
    for i, f in enumerate(filters):
        x = layers.Conv2D(f, 3, padding="same", use_bias=False, name=f"cnn_conv{i + 1}")(x)
        x = layers.BatchNormalization(momentum=0.9, name=f"cnn_bn{i + 1}")(x)
        x = layers.ReLU(name=f"cnn_relu{i + 1}")(x)
        x = layers.MaxPooling2D(2, name=f"cnn_pool{i + 1}")(x)
        if dropout:
            x = layers.Dropout(dropout, name=f"cnn_drop{i + 1}")(x)
    return layers.GlobalAveragePooling2D(name="cnn_gap")(x)


def build_expert_model(discriminators: dict[str, keras.Model], image_size: tuple[int, int],
                       n_classes: int, *, cnn_filters: tuple[int, ...] = (32, 64, 128),
                       cnn_dropout: float = 0.1, dense_units: int = 128, l2: float = 1e-4,
                       dropout: float = 0.5, trainable_experts: bool = False) -> keras.Model:
    """The fused classifier: frozen class-expert trunks + a trainable CNN branch.

    Args:
        discriminators: dx -> discriminator of notebook 03 (input RGB in [-1, 1], a flat stack
            of layers with one named ``disc_features``); may be empty (CNN branch only).
        image_size: (height, width) of the input; the trunks are size-agnostic.
        n_classes: classes of the softmax (all of them, not only the expert classes).
        cnn_filters: filters of the trainable CNN branch's blocks (empty: no CNN branch).
        cnn_dropout: dropout after each CNN block.
        dense_units: width of the fused Dense layer (L2-regularised).
        l2: L2 weight decay of the fused Dense layer and the output layer.
        dropout: dropout between the fused Dense layer and the softmax.
        trainable_experts: ``False`` (stage 1) freezes every expert layer.

    Returns:
        A flat functional model taking RGB in [0, 255].
    """
    if not discriminators and not cnn_filters:
        raise ValueError("no branch: pass at least one discriminator or some cnn_filters")
    reg = keras.regularizers.l2(l2) if l2 else None
    inputs = keras.Input((*image_size, 3), name="image")
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="to_unit_range")(inputs)
    pooled = []
    for dx in sorted(discriminators):
        feats = _copy_trunk(x, discriminators[dx], dx, trainable_experts)
        pooled.append(layers.GlobalAveragePooling2D(name=f"{EXPERT_PREFIX}{dx}_gap")(feats))
    if cnn_filters:
        pooled.append(_cnn_branch(x, tuple(cnn_filters), cnn_dropout))
    h = layers.Concatenate(name="fused_concat")(pooled) if len(pooled) > 1 else pooled[0]
    h = layers.Dense(dense_units, activation="relu", kernel_regularizer=reg, name="fused_dense")(h)
    h = layers.Dropout(dropout, name="fused_drop")(h)
    outputs = layers.Dense(n_classes, activation="softmax", kernel_regularizer=reg,
                           dtype="float32", name="probs")(h)
    return keras.Model(inputs, outputs, name="class_experts")


def expert_layers(model: keras.Model) -> list:
    """The layers of the model that belong to an expert trunk (with weights or not)."""
    return [lyr for lyr in model.layers
            if lyr.name.startswith(EXPERT_PREFIX) and not lyr.name.endswith("_gap")]


def expert_classes(model: keras.Model) -> list[str]:
    """The dx codes whose expert trunks the model holds."""
    return sorted({lyr.name[len(EXPERT_PREFIX):-len("_gap")] for lyr in model.layers
                   if lyr.name.startswith(EXPERT_PREFIX) and lyr.name.endswith("_gap")})


def set_experts_trainable(model: keras.Model, trainable: bool = True) -> keras.Model:
    """Freeze or unfreeze every expert layer (recompile afterwards); returns the model."""
    for lyr in expert_layers(model):
        lyr.trainable = trainable
    return model


def branch_table(model: keras.Model) -> pd.DataFrame:
    """One row per branch (each expert, the CNN branch, the head): layers, parameters and
    trainable parameters — the model's diagram as a table when graphviz is absent."""
    rows: dict[str, dict] = {}
    for lyr in model.layers:
        if isinstance(lyr, keras.layers.InputLayer):
            continue
        name = lyr.name
        if name.startswith(EXPERT_PREFIX):
            dx = next((d for d in expert_classes(model) if name.startswith(f"{EXPERT_PREFIX}{d}_")),
                      "?")
            branch = f"expert {dx}"
        elif name.startswith("cnn_"):
            branch = "CNN branch"
        elif name == "to_unit_range":
            branch = "input rescaling"
        else:
            branch = "fusion head"
        row = rows.setdefault(branch, {"layers": 0, "params": 0, "trainable params": 0})
        n = sum(int(w.numpy().size) for w in lyr.weights)
        row["layers"] += 1
        row["params"] += n
        row["trainable params"] += sum(int(w.numpy().size) for w in lyr.trainable_weights)
    return pd.DataFrame.from_dict(rows, orient="index")


def diagram(model: keras.Model, path) -> Path | None:
    """Draw the model with ``keras.utils.plot_model`` if pydot and graphviz are installed;
    returns the PNG path, or ``None`` (use :func:`branch_table` instead)."""
    try:
        keras.utils.plot_model(model, to_file=str(path), show_shapes=True, dpi=72)
    except (ImportError, OSError, FileNotFoundError):
        return None
    return Path(path) if Path(path).exists() else None
