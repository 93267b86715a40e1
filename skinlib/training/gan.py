"""Train one DCGAN per minority class and resume it after an interruption (notebook 03).

A class's GAN lives in ``models/gan/<dx>/`` of the run folder: ``generator.keras`` and
``discriminator.keras`` (plain models), ``checkpoints/`` (a ``tf.train.CheckpointManager``
folder with every variable of both networks and both optimizers, written every
``checkpoint_every`` steps, so a killed run continues from the last one), ``losses.csv`` (one
row per checkpoint, also written to TensorBoard under ``logs/tensorboard/03_gan_<dx>/`` against
the step), ``samples.npz`` (a fixed-latent sample grid per checkpoint) and
``train.json`` (the record whose presence means "done"). Only the class's **training-split**
images are used. Using the trained GANs (loading, sampling, synthetic rows) is
:mod:`skinlib.gan`.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd

from skinlib.gan import class_images, gan_dir, to_uint8, to_unit
from skinlib.rundir import RunDir
from skinlib.training.fit import get_strategy, set_seed, tensorboard_available, tensorboard_dir

N_FIXED = 16  # fixed latent vectors for the sample grids


def _checkpoints(gan, folder: Path):
    """A ``tf.train.CheckpointManager`` over every variable a resumed training needs.

    Both networks, both optimizers (slots built now, so a restore has somewhere to go), the
    DiffAugment/latent seed state and the step, in ``folder/checkpoints`` (the last one kept;
    TensorFlow writes the index last, so a kill mid-write leaves the previous one readable).
    """
    import tensorflow as tf

    gan.build_optimizers()
    checkpoint = tf.train.Checkpoint(
        generator=gan.generator, discriminator=gan.discriminator, g_optimizer=gan.g_optimizer,
        d_optimizer=gan.d_optimizer, seed=gan.seed_generator.state,
        step=tf.Variable(0, dtype=tf.int64))
    return tf.train.CheckpointManager(checkpoint, str(folder / "checkpoints"), max_to_keep=1)


def _restore(manager) -> int:
    """Load the last checkpoint, if any; return its step (0 when there is none)."""
    path = manager.latest_checkpoint
    if path is None:
        return 0
    try:
        manager.checkpoint.restore(path).assert_existing_objects_matched()
    except (AssertionError, ValueError) as err:
        raise ValueError(f"{path} does not fit this GAN ({err}): it was written with another "
                         f"size, latent_dim or filters; delete {manager.directory} or pass "
                         "force=True") from None
    return int(manager.checkpoint.step.numpy())


def _checkpoint_callback(gan, manager, folder: Path, every: int, fixed_z: np.ndarray,
                         log_dir: Path | None):
    """Keras callback: at each block of ``every`` steps, checkpoint, log losses, sample.

    The losses go to ``losses.csv`` and, against the step, to TensorBoard under ``log_dir``.
    """
    import keras
    import tensorflow as tf

    writer = (tf.summary.create_file_writer(str(log_dir))
              if log_dir is not None and tensorboard_available(Path(log_dir).name) else None)

    class Checkpointer(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            step = (epoch + 1) * every
            manager.checkpoint.step.assign(step)
            manager.save(checkpoint_number=step)
            row = {"step": step, **{k: float(v) for k, v in (logs or {}).items()}}
            path = folder / "losses.csv"
            pd.DataFrame([row]).to_csv(path, mode="a", header=not path.exists(), index=False)
            if writer is not None:
                with writer.as_default(step=step):
                    for k, v in row.items():
                        if k != "step":
                            tf.summary.scalar(k, v)
                writer.flush()
            imgs = to_uint8(gan.generator.predict(fixed_z, verbose=0))
            store = RunDir(folder)  # the GAN's folder, read and written like a run folder
            samples = (store.read_arrays("samples.npz", "03")
                       if (folder / "samples.npz").exists() else {})
            samples[f"step_{step:07d}"] = imgs
            store.write_arrays("samples.npz", compressed=True, **samples)

    return Checkpointer()


def _random_flips(x):
    """Horizontal and vertical flips of real images (lesions have no up or left)."""
    import tensorflow as tf

    x = tf.where(tf.random.uniform((tf.shape(x)[0], 1, 1, 1)) < 0.5, x[:, :, ::-1], x)
    return tf.where(tf.random.uniform((tf.shape(x)[0], 1, 1, 1)) < 0.5, x[:, ::-1], x)


def _real_images(images: np.ndarray, batch: int, seed: int):
    """Endless shuffled, flipped batches of real images in [-1, 1]."""
    import tensorflow as tf

    return (tf.data.Dataset.from_tensor_slices(to_unit(images))
            .shuffle(len(images), seed=seed, reshuffle_each_iteration=True).repeat()
            .batch(batch, drop_remainder=True)
            .map(_random_flips, num_parallel_calls=tf.data.AUTOTUNE).prefetch(2))


def _build_gan(size: int, latent_dim: int, filters: int, diffaugment, seed: int,
               run_eagerly: bool):
    """A compiled DCGAN, built under the device strategy, in float32 on every device: its own
    two-optimizer train step has no loss scaling, which ``mixed_float16`` would need."""
    from skinlib.models import dcgan

    with get_strategy().scope():
        gen = dcgan.build_generator(size, latent_dim, filters)
        disc = dcgan.build_discriminator(size, filters)
        gan = dcgan.DCGAN(gen, disc, latent_dim, diffaugment=diffaugment, seed=seed)
        gan.compile(run_eagerly=run_eagerly)
    return gan


def _load_finished(folder: Path) -> dict | None:
    """The record of a finished training in ``folder`` (``loaded=True``), else ``None``."""
    record = RunDir(folder).read_record("train.json")
    if record is not None and (folder / "generator.keras").exists():
        return {**record, "loaded": True}
    return None


def _checked(images, size: int) -> np.ndarray:
    """``images`` as an array, or an error when they are not ``(n, size, size, 3)``."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[1:] != (size, size, 3) or len(images) == 0:
        raise ValueError(f"train_gan needs uint8 images of shape (n, {size}, {size}, 3), got "
                         f"{images.shape}")
    return images


def _clear_logs(folder: Path, log_dir) -> None:
    """A fresh start: delete the loss log, samples and TensorBoard log of an unfinished run."""
    for name in ("losses.csv", "samples.npz"):
        (folder / name).unlink(missing_ok=True)
    if log_dir is not None:
        shutil.rmtree(log_dir, ignore_errors=True)


def _finish(gan, folder: Path, record: dict, epochs_run_now: int) -> dict:
    """Save both networks and write the "done" record (with the final losses)."""
    gan.generator.save(folder / "generator.keras")
    gan.discriminator.save(folder / "discriminator.keras")
    losses = pd.read_csv(folder / "losses.csv")
    record = {**record,
              "final": {k: float(losses[k].iloc[-1]) for k in losses.columns if k != "step"},
              "epochs_run_now": int(epochs_run_now), "loaded": False}
    RunDir(folder).write_record("train.json", record)
    return record


def train_gan(images: np.ndarray, folder, *, size: int, latent_dim: int = 100, steps: int,
              checkpoint_every: int, batch_size: int = 32, filters: int = 256,
              diffaugment=True, seed: int = 0, force: bool = False, callbacks=(),
              log_dir=None, verbose: int = 0, run_eagerly: bool = False) -> dict:
    """Train (or resume, or load) a DCGAN on ``images`` and save it under ``folder``.

    Args:
        images: uint8 ``(n, size, size, 3)`` real images of one class.
        folder: where the GAN's files go (created).
        steps: total generator/discriminator updates (rounded up to ``checkpoint_every``).
        checkpoint_every: steps between checkpoints, loss rows and sample grids.
        filters: widest layer of the generator and the discriminator.
        diffaugment: ``True``, ``False`` or a comma list of color, translation, cutout.
        force: delete an earlier (finished or partial) training in ``folder`` first.
        callbacks: extra Keras callbacks (tests use one to simulate an interruption).
        log_dir: TensorBoard folder for the losses (``None``: none written).
        run_eagerly: skip graph tracing (faster for tiny test models only).

    Returns:
        The ``train.json`` record: steps, train_seconds, resumed_from, loaded, final losses...
    """
    folder = Path(folder)
    if force:
        shutil.rmtree(folder, ignore_errors=True)
    if (done := _load_finished(folder)) is not None:
        return done
    images = _checked(images, size)
    folder.mkdir(parents=True, exist_ok=True)
    set_seed(seed)
    gan = _build_gan(size, latent_dim, filters, diffaugment, seed, run_eagerly)
    manager = _checkpoints(gan, folder)
    start_step = _restore(manager)
    if start_step == 0:
        _clear_logs(folder, log_dir)
    every = max(1, int(checkpoint_every))
    blocks = max(1, -(-int(steps) // every))
    fixed_z = np.random.default_rng(seed).normal(size=(N_FIXED, latent_dim)).astype("float32")
    batch = min(int(batch_size), len(images))
    t0 = time.perf_counter()
    history = gan.fit(_real_images(images, batch, seed), epochs=blocks,
                      initial_epoch=start_step // every, steps_per_epoch=every, verbose=verbose,
                      shuffle=False, callbacks=[_checkpoint_callback(
                          gan, manager, folder, every, fixed_z, log_dir), *callbacks])
    return _finish(gan, folder, {
        "steps": int(blocks * every), "resumed_from": int(start_step),
        "train_seconds": round(time.perf_counter() - t0, 2), "n_images": int(len(images)),
        "size": int(size), "filters": int(filters), "batch_size": batch,
        "diffaugment": list(gan.policy), "seed": int(seed)},
        epochs_run_now=len(history.history.get("d_loss", [])))


def train_class(session, dx: str, *, diffaugment=None, folder_name: str | None = None,
                steps: int | None = None, verbose: int = 0, callbacks=()) -> dict:
    """Train (or resume, or load) the GAN of one class on its training-split images.

    ``folder_name`` (default ``dx``) lets an ablation (e.g. without DiffAugment) live beside
    the main GAN; its losses go to TensorBoard as ``03_gan_<folder_name>``. ``diffaugment``
    ``None`` means the profile's value.
    """
    import keras

    p = session.profile
    keras.backend.clear_session()
    images = class_images(session, dx, "train")
    return train_gan(images, gan_dir(session.run, folder_name or dx), size=p.gan_size,
                     latent_dim=p.gan_latent_dim, steps=steps or p.gan_steps,
                     checkpoint_every=p.gan_checkpoint_every, batch_size=p.gan_batch_size,
                     filters=p.gan_filters,
                     diffaugment=p.gan_diffaugment if diffaugment is None else diffaugment,
                     seed=p.seed, force=session.force, verbose=verbose, callbacks=callbacks,
                     log_dir=tensorboard_dir(session.run, f"03_gan_{folder_name or dx}"))
