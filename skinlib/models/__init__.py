"""Model builders. Each returns a plain functional Keras model whose input is RGB in [0, 255]."""

from __future__ import annotations

from contextlib import contextmanager


@contextmanager
def mixed_policy(mixed: bool):
    """Build layers under Keras's ``mixed_float16`` policy when ``mixed`` (float16 compute,
    float32 weights: for GPUs) and restore the previous policy after. Every builder keeps its
    output layer float32, and Keras adds loss scaling when a mixed model is compiled."""
    import keras

    before = keras.mixed_precision.dtype_policy()
    if mixed:
        keras.mixed_precision.set_dtype_policy("mixed_float16")
    try:
        yield
    finally:
        keras.mixed_precision.set_dtype_policy(before)
