"""One ``fit`` for every classifier: seeds, device strategy, training inputs, callbacks, resume.

A training run named ``name`` keeps everything under the run folder: the model
(``models/<name>.keras``), the best checkpoint, a ``BackupAndRestore`` folder that lets a killed
run resume from its last finished epoch, the epoch log (``logs/<name>_history.csv``), the
TensorBoard log (``logs/tensorboard/<name>/``: ``tensorboard --logdir RUN/logs/tensorboard``) and
a record (``logs/<name>_train.json``) whose presence means "done": a re-run loads the model
instead of training again unless ``force=True``.
"""

from __future__ import annotations

import importlib.util
import shutil
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd


def set_seed(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and TensorFlow; ``deterministic`` also makes TF ops deterministic."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(int(seed))
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def repeat_seed(profile, r: int) -> int:
    """The seed of repeat ``r`` of a model (``r = 0`` is the profile's seed)."""
    return int(profile.seed) + 1000 * int(r)


def repeat_name(name: str, r: int) -> str:
    """The training name of repeat ``r`` of a model: ``name`` for the first, ``name_s<r>`` after."""
    return name if int(r) == 0 else f"{name}_s{int(r)}"


def get_strategy():
    """The ``tf.distribute`` strategy for this machine: TPU, several GPUs, or the default."""
    import tensorflow as tf

    try:  # Colab TPU runtimes expose a resolver; elsewhere this fails fast.
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    except (ValueError, RuntimeError, tf.errors.NotFoundError):
        pass
    gpus = tf.config.list_physical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def gpu_visible() -> bool:
    """Whether TensorFlow sees a GPU."""
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


@contextmanager
def build_scope(mixed: bool | None = None):
    """Where every trainer builds its model: the device strategy's scope and, on a GPU
    (``mixed=None``), Keras's ``mixed_float16`` policy (:func:`skinlib.models.mixed_policy`).

    A CPU keeps float32: ``bench train`` measured ``mixed_bfloat16`` 3.9x to 11x slower than
    float32 on this project's 2-core CPU (README, Speed).
    """
    from skinlib.models import mixed_policy

    with get_strategy().scope(), mixed_policy(gpu_visible() if mixed is None else mixed):
        yield


AUGMENT_PLACES = ("auto", "pipeline", "model")


def augment_place(profile) -> str:
    """Where training augments its images: ``pipeline`` (CPU threads of ``tf.data``, float32
    batches) or ``model`` (uint8 batches, :func:`skinlib.pipeline.with_augment` on the model's
    device). The profile's ``augment_on="auto"`` picks ``model`` when a GPU is visible and
    ``pipeline`` on a CPU, where the in-model augmentation measured slower (README, Speed).
    Without augmentation it is ``pipeline`` (nothing to place)."""
    where = profile.augment_on
    if where not in AUGMENT_PLACES:
        raise ValueError(f"augment_on={where!r}: use one of {AUGMENT_PLACES}")
    if not profile.augment:
        return "pipeline"
    if where == "auto":
        return "model" if gpu_visible() else "pipeline"
    return where


def device_summary() -> str:
    """One line naming the devices TensorFlow sees (:func:`skinlib.notebook.device_line`)."""
    from skinlib.notebook import device_line

    line = device_line()
    return "CPU only (no GPU found: training is slow but works)" if line == "CPU only" else line


def class_weights(labels, n_classes: int) -> dict[int, float]:
    """scikit-learn's ``balanced`` weights n / (k * count_c), for the k classes present.

    Classes absent from ``labels`` get no entry (Keras then weighs them 1; they have no
    training rows anyway); a label outside ``range(n_classes)`` is refused.
    """
    from sklearn.utils.class_weight import compute_class_weight

    labels = np.asarray(labels).astype(int)
    present = np.unique(labels)
    if len(present) == 0 or present[0] < 0 or present[-1] >= n_classes:
        raise ValueError(f"labels must be non-empty and in 0..{n_classes - 1}, got {present}")
    weights = compute_class_weight("balanced", classes=present, y=labels)
    return {int(c): float(w) for c, w in zip(present, weights)}


def cosine_lr(base_lr: float, epochs: int, steps_per_epoch: int, warmup: int = 1):
    """The cosine learning-rate schedule by step (Keras ``CosineDecay``), warm-up included.

    Linear warm-up from 0 to ``base_lr`` over the first ``warmup`` epochs, then cosine decay to
    1% of ``base_lr`` at the end of the last epoch.
    """
    import keras

    steps = max(1, int(steps_per_epoch))
    return keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps=max(1, epochs - warmup) * steps, alpha=0.01, warmup_target=base_lr,
        warmup_steps=warmup * steps)


def epoch_steps(train_ds, steps_per_epoch: int | None = None) -> int:
    """Batches in one epoch: ``steps_per_epoch`` if given, else the dataset's length."""
    if steps_per_epoch:
        return int(steps_per_epoch)
    n = int(train_ds.cardinality())
    if n <= 0:
        raise ValueError(f"the training dataset has no known length ({n}): an endless dataset "
                         "(balance='resample') needs steps_per_epoch")
    return n


class TrainingInputs(NamedTuple):
    """What :func:`fit` takes from the data: ``fit(model, **inputs._asdict(), ...)``."""

    train_ds: object
    val_ds: object
    class_weight: dict[int, float] | None
    steps_per_epoch: int | None
    augment_seed: int | None = None  # set: uint8 batches, fit augments inside the model


def training_inputs(frame: pd.DataFrame, profile, *, n_classes: int, val_frame: pd.DataFrame,
                    image_size=None, balance: str | None = None,
                    seed: int | None = None) -> TrainingInputs:
    """The training and validation datasets, class weights and steps per epoch of a frame.

    Args:
        frame: training rows; ``val_frame``: the rows early stopping watches.
        profile: batch size, augmentation, balance, image size and seed come from it.
        image_size, balance, seed: override the profile's values. ``balance="weights"`` gives
            class weights, ``"resample"`` an endless class-balanced dataset and its steps.

    Where :func:`augment_place` says ``model``, both datasets yield uint8 batches and
    ``augment_seed`` tells :func:`fit` to augment inside the model.
    """
    from skinlib.pipeline import make_dataset, steps_per_epoch

    balance = balance or profile.balance
    size = tuple(image_size or profile.image_size)
    seed = profile.seed if seed is None else int(seed)
    in_model = augment_place(profile) == "model"
    output = "uint8" if in_model else "float32"
    train_ds = make_dataset(frame, image_size=size, batch_size=profile.batch_size, training=True,
                            augment=profile.augment, balance=balance, n_classes=n_classes,
                            seed=seed, output=output)
    val_ds = make_dataset(val_frame, image_size=size, batch_size=profile.batch_size, output=output)
    weights = class_weights(frame["label"], n_classes) if balance == "weights" else None
    steps = steps_per_epoch(frame, profile.batch_size) if balance == "resample" else None
    return TrainingInputs(train_ds, val_ds, weights, steps, seed if in_model else None)


def epoch_images(frame: pd.DataFrame, inputs: TrainingInputs, batch_size: int) -> int:
    """Training images one epoch shows: the frame, or the resampled steps' batches."""
    return int(inputs.steps_per_epoch * batch_size if inputs.steps_per_epoch else len(frame))


def budget(record: dict, *, epochs_max: int, images_per_epoch: int) -> dict:
    """What a training run cost: ``epochs_run``, ``epochs_max`` (the epochs it was allowed) and
    ``images_seen`` (training images shown, augmented copies and repeats counted)."""
    run = int(record.get("epochs_run") or 0)
    return {"epochs_run": run, "epochs_max": int(epochs_max),
            "images_seen": run * int(images_per_epoch)}


def tensorboard_dir(run, name: str) -> Path:
    """The TensorBoard log folder of the training run ``name``: ``logs/tensorboard/<name>``."""
    return run.logs / "tensorboard" / name


def tensorboard_available(name: str) -> bool:
    """Whether ``tf.summary`` can write (it needs the ``tensorboard`` package); warns if not."""
    if importlib.util.find_spec("tensorboard") is not None:
        return True
    warnings.warn(f"the tensorboard package is not installed, so {name} gets no TensorBoard log: "
                  "pip install -r requirements.txt (it lists tensorboard)", stacklevel=2)
    return False


def paths(run, name: str) -> dict[str, Path]:
    """Where a training run named ``name`` keeps its files."""
    return {
        "model": run.models / f"{name}.keras",
        "best": run.models / f"{name}.best.keras",
        "backup": run.models / f"{name}_backup",
        "history": run.logs / f"{name}_history.csv",
        "record": run.logs / f"{name}_train.json",
        "tensorboard": tensorboard_dir(run, name),
    }


def callbacks(run, name: str, *, patience: int, schedule: str = "plateau",
              monitor: str = "val_loss") -> list:
    """Early stopping, LR on plateau, best checkpoint, backup-and-restore, CSV and TensorBoard.

    The cosine schedule lives in the optimizer (:func:`cosine_lr`), not here. TensorBoard gets the epoch metrics and the learning rate only (no histograms, images or
    graph), so it costs next to nothing even for the smoke profile.
    """
    import keras

    p = paths(run, name)
    cbs = [
        keras.callbacks.BackupAndRestore(str(p["backup"])),
        keras.callbacks.EarlyStopping(monitor=monitor, patience=patience,
                                      restore_best_weights=True),
        keras.callbacks.ModelCheckpoint(str(p["best"]), monitor=monitor, save_best_only=True),
        keras.callbacks.CSVLogger(str(p["history"]), append=True),
        keras.callbacks.TerminateOnNaN(),
    ]
    if tensorboard_available(name):  # before the LR callbacks: it logs each epoch's own rate
        cbs.append(keras.callbacks.TensorBoard(str(p["tensorboard"]), histogram_freq=0,
                                               write_graph=False, write_images=False,
                                               update_freq="epoch"))
    if schedule == "plateau":
        cbs.append(keras.callbacks.ReduceLROnPlateau(monitor=monitor, factor=0.5,
                                                     patience=max(1, patience // 2), min_lr=1e-6))
    elif schedule not in ("cosine", "none"):
        raise ValueError(f"schedule={schedule!r}: use plateau, cosine or none")
    return cbs


SMALL_MODEL_PARAMS = 5_000_000  # below this, a GPU step is short: run several per call


def steps_per_execution(model) -> int:
    """Training steps per call into the compiled function: 16 for a small model on one GPU
    (its step is shorter than the call overhead), else 1 (a CPU, a large model, or several
    replicas, where Keras 3.15 / TF 2.21 fails with more than one)."""
    if not gpu_visible() or model.distribute_strategy.num_replicas_in_sync > 1:
        return 1
    return 16 if model.count_params() < SMALL_MODEL_PARAMS else 1


def compile_model(model, learning_rate) -> None:
    """Compile a classifier (Adam, sparse cross-entropy, accuracy) under its device strategy.

    ``learning_rate`` is a number or a Keras schedule. ``jit_compile`` stays Keras's
    ``"auto"``: XLA on a GPU (every model's layers compile, :class:`~skinlib.pipeline.Augment`
    included), none on a CPU, where ``bench train`` measured it 4x to 13x slower. A model built
    under ``mixed_float16`` gets Keras's loss scaling.
    """
    import keras

    with model.distribute_strategy.scope():
        model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                      steps_per_execution=steps_per_execution(model))


def is_done(run, name: str) -> bool:
    """Whether a training run finished earlier (its model and record exist)."""
    p = paths(run, name)
    return p["model"].exists() and p["record"].exists()


def load_done(run, name: str):
    """The finished model and its training record."""
    import keras

    p = paths(run, name)
    return keras.models.load_model(p["model"]), run.read_record(_record_path(run, name))


def _forget(p: dict[str, Path]) -> None:
    """Delete every file of an earlier training run (``force=True``)."""
    for key in ("model", "best", "history", "record"):
        p[key].unlink(missing_ok=True)
    for key in ("backup", "tensorboard"):
        shutil.rmtree(p[key], ignore_errors=True)


def _record_path(run, name: str) -> str:
    """The "done" record of a training run, relative to the run folder."""
    return paths(run, name)["record"].relative_to(run.root).as_posix()


def _finish(model, run, name: str, seconds: float, resumed: bool) -> dict:
    """Keep the best epoch's weights, save the model and write the "done" record.

    The best checkpoint may hold an :class:`~skinlib.pipeline.Augment` layer in front of
    ``model``'s (:func:`trained_model`); it has no weights, so the lists match.
    """
    import keras

    from skinlib.pipeline import Augment

    p = paths(run, name)
    if p["best"].exists():  # the best epoch by validation loss, whatever stopped training
        best = keras.models.load_model(p["best"], custom_objects={"Augment": Augment})
        model.set_weights(best.get_weights())
    model.save(p["model"])
    history = pd.read_csv(p["history"]).to_dict(orient="list") if p["history"].exists() else {}
    record = {"name": name, "history": history, "train_seconds": round(seconds, 2),
              "epochs_run": len(history.get("epoch", [])), "resumed": resumed, "loaded": False}
    run.write_record(_record_path(run, name), record)
    return record


def trained_model(model, augment_seed: int | None):
    """What :func:`fit` trains: ``model`` itself, or (``augment_seed`` set) ``model`` behind an
    :class:`~skinlib.pipeline.Augment` layer that shares its layers, built under the same
    strategy and precision. ``model`` is what gets saved either way."""
    from skinlib.models import mixed_policy
    from skinlib.pipeline import Augment, with_augment

    if augment_seed is None or any(isinstance(layer, Augment) for layer in model.layers):
        return model
    with model.distribute_strategy.scope(), \
            mixed_policy(model.dtype_policy.name == "mixed_float16"):
        return with_augment(model, seed=augment_seed)


def fit(model, train_ds, val_ds, *, run, name: str, epochs: int, patience: int,
        learning_rate: float = 1e-3, class_weight: dict | None = None,
        steps_per_epoch: int | None = None, schedule: str = "plateau", force: bool = False,
        augment_seed: int | None = None, verbose: int = 2) -> tuple[object, dict]:
    """Compile and train a classifier, or load it if this run folder already trained it.

    ``augment_seed`` (from :func:`training_inputs` when :func:`augment_place` is ``model``):
    the datasets yield uint8 batches and the augmentation runs inside the trained model
    (:func:`trained_model`); the saved model is ``model`` without it.

    Returns:
        ``(model, record)``; the record holds ``history`` (metric -> list), ``train_seconds``,
        ``epochs_run``, ``resumed`` and ``loaded`` (True when nothing was trained).
    """
    p = paths(run, name)
    if force:
        _forget(p)
    elif is_done(run, name):
        model, record = load_done(run, name)
        record["loaded"] = True
        return model, record
    resumed = p["backup"].exists()
    if not resumed:  # a fresh start: no epoch log of an earlier, unfinished run may remain
        p["history"].unlink(missing_ok=True)
        shutil.rmtree(p["tensorboard"], ignore_errors=True)
    cbs = callbacks(run, name, patience=patience, schedule=schedule)  # checks ``schedule``
    lr = (cosine_lr(learning_rate, epochs, epoch_steps(train_ds, steps_per_epoch))
          if schedule == "cosine" else learning_rate)
    trained = trained_model(model, augment_seed)
    compile_model(trained, lr)
    start = time.perf_counter()
    trained.fit(train_ds, validation_data=val_ds, epochs=epochs, steps_per_epoch=steps_per_epoch,
                shuffle=False, class_weight=class_weight, verbose=verbose, callbacks=cbs)
    return model, _finish(model, run, name, time.perf_counter() - start, resumed)


def stage_history(histories) -> tuple[pd.DataFrame, int | None]:
    """Epoch logs of consecutive training stages as one frame, epochs numbered across stages.

    Returns:
        ``(frame, boundary)``: ``boundary`` is the number of epochs of the first stage (the
        0-based epoch at which the second starts), ``None`` when only one stage has epochs.
    """
    frames = [pd.DataFrame(h) for h in histories if h is not None]
    parts = [f for f in frames if not f.empty]
    if not parts:
        return pd.DataFrame(), None
    frame = pd.concat(parts, ignore_index=True)
    frame["epoch"] = np.arange(len(frame))
    return frame, (len(parts[0]) if len(parts) > 1 else None)


def predict_probs(model, frame: pd.DataFrame, image_size, batch_size: int = 256) -> np.ndarray:
    """Class probabilities for every row of a catalog frame, in the frame's order; the images
    come from the image cache (decoded once, the same pixels training saw)."""
    from skinlib.pipeline import make_dataset

    ds = make_dataset(frame, image_size=image_size, batch_size=batch_size, with_labels=False,
                      progress=False)
    return np.asarray(model.predict(ds, verbose=0), dtype=np.float64)
