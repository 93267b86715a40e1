"""A tiny run folder for predict/monitor tests: the smoke catalog and split, a very small CNN
trained for a few epochs in-test, evaluated by the one evaluation path (metrics JSON + card)."""

from __future__ import annotations

from pathlib import Path

NAME = "02_tiny"


def tiny_cnn(size, n_classes: int):
    """Two small Conv-BatchNorm-ReLU-MaxPool blocks, global pooling, a 16-unit embedding,
    softmax (BatchNorm momentum 0.8: its moving statistics settle within ten short epochs)."""
    import keras
    from keras import layers

    inputs = keras.Input((*size, 3))
    x = layers.Rescaling(1 / 255)(inputs)
    for filters in (16, 32):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        x = layers.ReLU()(layers.BatchNormalization(momentum=0.8)(x))
        x = layers.MaxPooling2D(2)(x)
    x = layers.Dense(16, activation="relu")(layers.GlobalAveragePooling2D()(x))
    return keras.Model(inputs, layers.Dense(n_classes, activation="softmax")(x))


def make_tiny_run(root: Path):
    """Train, save and evaluate a tiny CNN in ``root``; return the session."""
    from skinlib import evaluation, pipeline, session
    from skinlib.training.fit import compile_model, set_seed

    s = session.start("smoke", None, str(root), quiet=True)
    size = s.profile.image_size
    set_seed(s.profile.seed, deterministic=True)
    x, y = pipeline.load_array(s.frame("train"), size)
    model = tiny_cnn(size, s.n_classes)
    compile_model(model, 1e-2)
    model.fit(x.astype("float32"), y, epochs=10, batch_size=32, verbose=0, shuffle=True)
    model.save(s.run.models / f"{NAME}.keras")
    evaluation.evaluate_model(s, model, name=NAME, image_size=size, train_seconds=0,
                              n_train=len(x))
    return s
