"""``python -m skinlib bench``: input-pipeline and training throughput, measured side by side.

``bench pipeline`` reads the same images, the same number of them, one way after the other in
one process: the seed work's Keras ``ImageDataGenerator.flow_from_dataframe`` (the legacy code
Keras 3 still ships in ``keras/src/legacy``), a plain ``tf.data`` map with no parallelism,
caching or prefetch, the skinlib pipeline cold (first epoch, decoding) and warm (later epochs,
from its cache), and the limit: decode + resize alone, in parallel, without augmentation or
caching. All augmenting ways use the same augmentation (flips, rotation 0.1 turn, zoom 10%,
brightness and contrast 10%; ``skinlib.pipeline.augment_batch`` in the tf.data ways, the
generator's own options plus a contrast function in the seed way). Peak memory per stage is
the highest resident set size sampled while the stage ran (and its rise over the stage's start).

``bench train`` times training steps of the baseline CNN and ResNet50 (``weights=None``) on
synthetic tensors: eager, compiled graph, and XLA (``jit_compile``); mixed precision only where a
GPU exists.

JSON of ``bench pipeline``: one size gives ``{"size", "image_size", "n_images", "batch_size",
"results": {name: {"images_per_s", "seconds", "peak_rss_mb", "rss_increase_mb"}}, "ratios"}``
(DESIGN.md); several sizes give ``{"machine", "runs": [one such object per size]}``.
"""

from __future__ import annotations

import os
import platform
import tempfile
import threading
import time
from contextlib import contextmanager

import numpy as np

STAGES = ("imagedatagenerator", "naive_tfdata", "skinlib_cold", "skinlib_warm", "decode_limit")
DEFAULT_SIZES = (64, 128, 224)
BATCH_SIZE = 32


# --------------------------------------------------------------------------------------------
# measuring
# --------------------------------------------------------------------------------------------

def _rss_mb() -> float:
    """Resident set size of this process in MiB."""
    import psutil

    return psutil.Process().memory_info().rss / 2**20


@contextmanager
def rss_peak(interval: float = 0.02):
    """Sample this process's RSS in a thread while the block runs.

    Yields a dict that holds ``peak_rss_mb`` and ``rss_increase_mb`` (peak minus the RSS at
    the start) once the block has finished.
    """
    out = {"start": _rss_mb()}
    peak = [out["start"]]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], _rss_mb())
            stop.wait(interval)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    try:
        yield out
    finally:
        stop.set()
        t.join()
        peak[0] = max(peak[0], _rss_mb())
        out.update(peak_rss_mb=round(peak[0], 1), rss_increase_mb=round(peak[0] - out["start"], 1))
        del out["start"]


def consume(batches) -> int:
    """Read every batch of an iterable (as NumPy, as a model would receive it); images read."""
    n = 0
    for batch in batches:
        x = batch[0] if isinstance(batch, tuple | list) else batch
        n += int(np.asarray(x).shape[0])
    return n


def _timed(make_batches) -> dict:
    """Images/s, seconds and memory of reading ``make_batches()`` once."""
    with rss_peak() as mem:
        start = time.perf_counter()
        n = consume(make_batches())
        seconds = time.perf_counter() - start
    return {"images_per_s": round(n / seconds, 1), "seconds": round(seconds, 3), "n_images": n,
            **mem}


def _guard(fn) -> dict:
    """Run a stage; a failure becomes ``{"error": ...}`` so the other stages still report."""
    try:
        return fn()
    except Exception as err:  # one broken way must not hide the others' figures
        return {"error": f"{type(err).__name__}: {err}"}


# --------------------------------------------------------------------------------------------
# the ways of reading images
# --------------------------------------------------------------------------------------------

def _contrast(x: np.ndarray, rng: np.random.Generator, factor: float = 0.1) -> np.ndarray:
    """Random contrast of one image (ImageDataGenerator has none built in), as Keras does it."""
    f = rng.uniform(1 - factor, 1 + factor)
    mean = x.mean(axis=(0, 1), keepdims=True)
    return np.clip((x - mean) * f + mean, 0, 255)


def imagedatagenerator_batches(frame, image_size, batch_size: int = BATCH_SIZE, seed: int = 0):
    """The seed way: ``ImageDataGenerator(...).flow_from_dataframe`` with the same augmentation,
    one pass over the frame.

    Raises:
        ImportError: this TensorFlow has no ``tf.keras.preprocessing.image.ImageDataGenerator``
            (Keras 3 keeps the legacy class only for ``tf.keras`` compatibility).
    """
    import tensorflow as tf

    try:  # the seed work's loader, the baseline this bench compares against; deprecated
        ImageDataGenerator = tf.keras.preprocessing.image.ImageDataGenerator
    except AttributeError as err:
        raise ImportError(f"TensorFlow {tf.__version__} has no tf.keras.preprocessing.image."
                          "ImageDataGenerator, the seed work's loader this bench compares "
                          "against (its 'imagedatagenerator' row records this error); use "
                          "TensorFlow 2.16-2.21 to time it") from err

    rng = np.random.default_rng(seed)
    gen = ImageDataGenerator(rotation_range=36, zoom_range=0.1, horizontal_flip=True,
                             vertical_flip=True, brightness_range=(0.9, 1.1), fill_mode="reflect",
                             preprocessing_function=lambda x: _contrast(x, rng))
    df = frame.assign(path=frame["path"].astype(str), dx=frame["dx"].astype(str))
    it = gen.flow_from_dataframe(df, x_col="path", y_col="dx", target_size=tuple(image_size),
                                 batch_size=batch_size, class_mode="sparse", shuffle=True,
                                 seed=seed, interpolation="bilinear", validate_filenames=False)
    return (it[i] for i in range(len(it)))


def naive_dataset(frame, image_size, batch_size: int = BATCH_SIZE, seed: int = 0):
    """A plain ``tf.data`` map: decode, resize, batch, augment; no parallelism, cache, prefetch."""
    import tensorflow as tf

    from skinlib.pipeline import augment_batch, decode_resize

    size = tuple(int(v) for v in image_size)
    ds = tf.data.Dataset.from_tensor_slices((frame["path"].astype(str).to_numpy(),
                                             frame["label"].astype("int32").to_numpy()))
    ds = ds.shuffle(len(frame), seed=seed)
    ds = ds.map(lambda p, y: (decode_resize(p, size), y))
    seeds = tf.data.Dataset.random(seed=seed).batch(2)
    ds = tf.data.Dataset.zip(ds.batch(batch_size), seeds)
    ds = ds.map(lambda xy, sd: (augment_batch(xy[0], sd), xy[1]))
    options = tf.data.Options()
    options.autotune.enabled = False
    options.threading.private_threadpool_size = 1
    return ds.with_options(options)


def decode_limit_dataset(frame, image_size, batch_size: int = BATCH_SIZE):
    """Decode + resize alone, in parallel, batched and prefetched: no augmentation, no cache."""
    import tensorflow as tf

    from skinlib.pipeline import decode_resize

    size = tuple(int(v) for v in image_size)
    ds = tf.data.Dataset.from_tensor_slices(frame["path"].astype(str).to_numpy())
    ds = ds.map(lambda p: decode_resize(p, size), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def pipeline_run(frame, image_size, *, epochs: int = 3, batch_size: int = BATCH_SIZE,
                 seed: int = 0) -> dict:
    """Every way on the same frame at one size (height, width), one after the other.

    Returns:
        ``{name: {"images_per_s", "seconds", "peak_rss_mb", "rss_increase_mb"}}`` (or
        ``{"error": ...}`` for a way that failed); ``skinlib_warm`` is the mean over epochs
        2..``epochs`` of one ``make_dataset(..., training=True)``.
    """
    from skinlib.pipeline import make_dataset

    if epochs < 2:
        raise ValueError(f"epochs={epochs}: the warm figure needs at least 2 epochs")
    size = tuple(int(v) for v in image_size)
    out = {"imagedatagenerator": _guard(lambda: _timed(
        lambda: imagedatagenerator_batches(frame, size, batch_size, seed)))}
    out["naive_tfdata"] = _guard(lambda: _timed(lambda: naive_dataset(frame, size, batch_size,
                                                                      seed)))
    ds = make_dataset(frame, image_size=size, batch_size=batch_size, training=True, seed=seed)
    out["skinlib_cold"] = _guard(lambda: _timed(lambda: ds))
    warm = [_guard(lambda: _timed(lambda: ds)) for _ in range(epochs - 1)]
    out["skinlib_warm"] = _merge(warm)
    out["decode_limit"] = _guard(lambda: _timed(lambda: decode_limit_dataset(frame, size,
                                                                             batch_size)))
    return out


def _merge(parts: list[dict]) -> dict:
    """Several timed epochs as one figure (images over total seconds, highest memory)."""
    bad = [p for p in parts if "error" in p]
    if bad:
        return bad[0]
    n, sec = sum(p["n_images"] for p in parts), sum(p["seconds"] for p in parts)
    return {"images_per_s": round(n / sec, 1), "seconds": round(sec, 3), "n_images": n,
            "epochs": len(parts), "peak_rss_mb": max(p["peak_rss_mb"] for p in parts),
            "rss_increase_mb": max(p["rss_increase_mb"] for p in parts)}


def ratios(results: dict) -> dict:
    """The ratios the issue asks for (None where a way failed)."""
    def r(a, b):
        x, y = results.get(a, {}).get("images_per_s"), results.get(b, {}).get("images_per_s")
        return round(x / y, 2) if x and y else None

    return {"skinlib_warm / imagedatagenerator": r("skinlib_warm", "imagedatagenerator"),
            "skinlib_cold / imagedatagenerator": r("skinlib_cold", "imagedatagenerator"),
            "skinlib_warm / decode_limit": r("skinlib_warm", "decode_limit"),
            "skinlib_warm / naive_tfdata": r("skinlib_warm", "naive_tfdata")}


def machine() -> dict:
    """CPU count, memory, GPU and versions: what the figures were measured on."""
    import psutil
    import tensorflow as tf

    gpus = [d.name for d in tf.config.list_physical_devices("GPU")]
    return {"cpus": os.cpu_count(), "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "gpu": gpus or "no GPU", "platform": platform.platform(),
            "tensorflow": tf.__version__, "keras": __import__("keras").__version__}


def bench_pipeline(data: str, sizes=DEFAULT_SIZES, *, limit: int | None = None, epochs: int = 3,
                   batch_size: int = BATCH_SIZE, seed: int = 0) -> dict:
    """Load a dataset's catalog and run :func:`pipeline_run` at each width in ``sizes``.

    The height is 3/4 of the width (HAM10000 images are 4:3): 64 -> 48x64, 128 -> 96x128,
    224 -> 168x224. ``limit`` takes a seeded random sample of that many images.
    """
    from skinlib.data import load_catalog

    with tempfile.TemporaryDirectory(prefix="skinlib_bench_") as tmp:
        catalog = load_catalog(data, run_dir=tmp if data == "synthetic" else None)
        if limit is not None and limit < len(catalog):
            catalog = catalog.sample(n=int(limit), random_state=seed).sort_values("image_id")
        catalog = catalog.reset_index(drop=True)
        runs = []
        for width in sizes:
            size = (int(round(width * 3 / 4)), int(width))
            res = pipeline_run(catalog, size, epochs=epochs, batch_size=batch_size, seed=seed)
            runs.append({"size": int(width), "image_size": list(size), "n_images": len(catalog),
                         "batch_size": batch_size, "epochs": epochs, "data": str(data),
                         "results": res, "ratios": ratios(res)})
    if len(runs) == 1:
        return {**runs[0], "machine": machine()}
    return {"machine": machine(), "runs": runs}


def format_pipeline(report: dict) -> str:
    """The pipeline figures as a text table."""
    runs = report.get("runs") or [report]
    lines = [f"{'size':>9}  {'way':20s} {'images/s':>10} {'peak RSS MB':>12} {'+RSS MB':>8}"]
    for run in runs:
        hw = "x".join(map(str, run["image_size"]))
        for name in STAGES:
            r = run["results"].get(name, {})
            if "error" in r:
                lines.append(f"{hw:>9}  {name:20s} error: {r['error']}")
                continue
            lines.append(f"{hw:>9}  {name:20s} {r['images_per_s']:>10.1f} "
                         f"{r['peak_rss_mb']:>12.0f} {r['rss_increase_mb']:>8.0f}")
        lines += [f"{'':>9}  {k} = {v}" for k, v in run["ratios"].items()]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# training throughput
# --------------------------------------------------------------------------------------------

def _model(name: str, image_size, n_classes: int, arch: str):
    """The baseline CNN or ResNet50 (random weights) for a size."""
    import keras

    if name == "cnn":
        from skinlib.models.cnn import build_cnn

        return build_cnn(tuple(image_size), n_classes, arch=arch)
    if name == "resnet50":
        inputs = keras.Input((*image_size, 3))
        x = keras.applications.resnet50.preprocess_input(inputs)
        base = keras.applications.ResNet50(weights=None, include_top=False, pooling="avg",
                                           input_shape=(*image_size, 3))
        outputs = keras.layers.Dense(n_classes, activation="softmax", dtype="float32")(base(x))
        return keras.Model(inputs, outputs, name="resnet50")
    raise ValueError(f"model {name!r}: use cnn or resnet50")


def train_rate(name: str, image_size, *, mode: str, batch_size: int, steps: int,
               n_classes: int = 7, arch: str = "gap", mixed: bool = False, seed: int = 0) -> dict:
    """Training images/s of one model in one mode (``eager``, ``graph``, ``xla``).

    Two warm-up steps (tracing, compilation) are timed apart as ``first_steps_s``.
    """
    import keras

    if mode not in ("eager", "graph", "xla"):
        raise ValueError(f"mode={mode!r}: use eager, graph or xla")
    keras.backend.clear_session()
    keras.mixed_precision.set_global_policy("mixed_float16" if mixed else "float32")
    try:
        model = _model(name, image_size, n_classes, arch)
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                      run_eagerly=mode == "eager", jit_compile=mode == "xla")
        rng = np.random.default_rng(seed)
        x = rng.uniform(0, 255, (batch_size, *image_size, 3)).astype("float32")
        y = rng.integers(0, n_classes, batch_size).astype("int32")
        start = time.perf_counter()
        for _ in range(2):
            model.train_on_batch(x, y)
        first = time.perf_counter() - start
        start = time.perf_counter()
        for _ in range(steps):
            loss = model.train_on_batch(x, y)
        seconds = time.perf_counter() - start
        np.asarray(loss)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    return {"images_per_s": round(steps * batch_size / seconds, 1), "seconds": round(seconds, 3),
            "steps": steps, "first_steps_s": round(first, 2)}


def bench_train(profile: str = "quick", *, steps: int = 20, models=("cnn", "resnet50"),
                modes=("eager", "graph", "xla")) -> dict:
    """:func:`train_rate` of each model and mode at the profile's sizes (CNN: ``image_size``,
    ResNet50: ``transfer_size``), plus mixed precision where a GPU exists."""
    import tensorflow as tf

    from skinlib.config import get_profile

    p = get_profile(profile)
    sizes = {"cnn": tuple(p.image_size), "resnet50": tuple(p.transfer_size)}
    gpu = bool(tf.config.list_physical_devices("GPU"))
    out = {"profile": p.name, "batch_size": p.batch_size, "steps": steps, "machine": machine(),
           "mixed_precision": "measured" if gpu else "no GPU: mixed precision not measured",
           "results": {}}
    for name in models:
        res = {"image_size": list(sizes[name])}
        for mode in modes:
            res[mode] = _guard(lambda: train_rate(name, sizes[name], mode=mode,
                                                  batch_size=p.batch_size, steps=steps,
                                                  arch=p.cnn_arch))
            if gpu:
                res[f"{mode}_mixed"] = _guard(lambda: train_rate(
                    name, sizes[name], mode=mode, batch_size=p.batch_size, steps=steps,
                    arch=p.cnn_arch, mixed=True))
        out["results"][name] = res
    return out


def format_train(report: dict) -> str:
    """The training figures as a text table."""
    lines = [f"profile {report['profile']}, batch {report['batch_size']}, {report['steps']} steps;"
             f" {report['mixed_precision']}",
             f"{'model':10s} {'size':>9} {'mode':12s} {'images/s':>10} {'first 2 steps s':>16}"]
    for name, res in report["results"].items():
        hw = "x".join(map(str, res["image_size"]))
        for mode, r in res.items():
            if mode == "image_size":
                continue
            if "error" in r:
                lines.append(f"{name:10s} {hw:>9} {mode:12s} error: {r['error']}")
            else:
                lines.append(f"{name:10s} {hw:>9} {mode:12s} {r['images_per_s']:>10.1f} "
                             f"{r['first_steps_s']:>16.2f}")
    return "\n".join(lines)

