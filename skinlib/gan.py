"""Use the DCGANs notebook 03 trained: load them, sample, and add their images to training.

A class's GAN lives in ``models/gan/<dx>/`` of the run folder (written by
:mod:`skinlib.training.gan`): ``generator.keras``, ``discriminator.keras``, ``losses.csv`` (one
row per checkpoint) and ``samples.npz`` (a fixed-latent sample grid per checkpoint). Generated
images only ever join the **training** split.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd


def gan_dir(run, dx: str) -> Path:
    """The folder of one class's GAN inside the run folder."""
    return run.inside("models", "gan", dx)


def to_unit(images: np.ndarray) -> np.ndarray:
    """uint8 [0, 255] -> float32 [-1, 1]."""
    return images.astype("float32") / 127.5 - 1.0


def to_uint8(images) -> np.ndarray:
    """[-1, 1] -> uint8 [0, 255]."""
    return np.clip(np.round((np.asarray(images) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def class_images(session, dx: str, split: str = "train", size: int | None = None) -> np.ndarray:
    """uint8 images of one class and split, resized to the GAN's square size."""
    from skinlib.pipeline import load_array

    frame = session.frame(split)
    frame = frame[frame["dx"] == dx]
    if frame.empty:
        raise ValueError(f"class {dx!r} has no {split} images: choose gan_classes among "
                         f"{sorted(session.frame(split)['dx'].unique())}")
    s = int(size or session.profile.gan_size)
    return load_array(frame, (s, s))[0]


def _require(run, dx: str, filename: str) -> Path:
    """A GAN file, or an error naming notebook 03."""
    return run.require(f"models/gan/{dx}/{filename}", "03")


def load_generator(run, dx: str):
    """The trained generator of class ``dx`` (a plain Keras model)."""
    import keras

    return keras.models.load_model(_require(run, dx, "generator.keras"))


def load_discriminator(run, dx: str):
    """The trained discriminator of class ``dx`` (a plain Keras model, input in [-1, 1])."""
    import keras

    return keras.models.load_model(_require(run, dx, "discriminator.keras"))


def losses(run, dx: str) -> pd.DataFrame:
    """The loss log of class ``dx``: one row per checkpoint."""
    return pd.read_csv(_require(run, dx, "losses.csv"))


def samples(run, dx: str) -> dict[int, np.ndarray]:
    """Step -> uint8 fixed-latent samples saved over training."""
    saved = run.read_arrays(f"models/gan/{dx}/samples.npz", "03")
    return {int(k.split("_")[1]): saved[k] for k in sorted(saved)}


def generate(run, dx: str, n: int, seed: int = 0, generator=None, batch_size: int = 256
             ) -> np.ndarray:
    """``n`` generated images of class ``dx`` as uint8 ``(n, size, size, 3)``."""
    gen = generator or load_generator(run, dx)
    latent = gen.input_shape[-1]
    z = np.random.default_rng(seed).normal(size=(int(n), latent)).astype("float32")
    if n == 0:
        size = gen.output_shape[1]
        return np.zeros((0, size, size, 3), np.uint8)
    return to_uint8(gen.predict(z, batch_size=batch_size, verbose=0))


def write_synthetic(session, dx: str, n: int, seed: int | None = None) -> pd.DataFrame:
    """Generate ``n`` images of ``dx``, write them as PNG under ``synthetic_images/<dx>/`` and
    return their catalog rows (``synthetic=True``, ``split="train"``, ``lesion_id=gan_<dx>_<i>``).
    """
    import tensorflow as tf

    folder = session.run.inside("synthetic_images", dx)
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    seed = session.profile.seed if seed is None else seed
    images = generate(session.run, dx, n, seed=seed)
    rows = []
    for i, img in enumerate(images):
        name = f"gan_{dx}_{i}"
        path = folder / f"{name}.png"
        path.write_bytes(tf.io.encode_png(img).numpy())
        rows.append({"image_id": name, "lesion_id": name, "dx": dx,
                     "label": session.classes.index(dx), "path": str(path), "source": "gan",
                     "split": "train", "synthetic": True})
    return pd.DataFrame(rows)


def augment_frame(session, target_count: int | None = None, classes=None,
                  train_frame: pd.DataFrame | None = None) -> tuple[pd.DataFrame, dict]:
    """The training frame plus GAN images up to ``target_count`` per minority class.

    Returns:
        ``(frame, added)``: the training rows (real ones with ``synthetic=False``) and, per
        class, how many generated images were added.
    """
    p = session.profile
    target = int(target_count if target_count is not None else p.gan_target_count)
    train = (session.frame("train") if train_frame is None else train_frame).copy()
    if "split" in train.columns and (train["split"] != "train").any():
        raise ValueError("augment_frame got rows outside the training split: GAN images may only "
                         "join training data")
    train["synthetic"] = False
    added, parts = {}, [train]
    for dx in classes or p.gan_classes:
        n = max(0, target - int((train["dx"] == dx).sum()))
        added[dx] = n
        if n:
            parts.append(write_synthetic(session, dx, n))
    frame = pd.concat(parts, ignore_index=True)
    frame["synthetic"] = frame["synthetic"].astype(bool)
    return frame, added
