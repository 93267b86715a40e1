"""``python -m skinlib bench``: input-pipeline and training throughput, measured side by side.

``bench pipeline`` reads the same images, the same number of them, every way one after the other
in one process (the ways and the work each does are in :data:`WAYS`): the seed work's Keras
``ImageDataGenerator.flow_from_dataframe``, a plain serial ``tf.data`` map, the skinlib pipeline
cold (decoding into an empty image cache) and warm (reading it; float32 with augmentation, and
the uint8 feed whose augmentation runs in the model), and the limits: the fastest parallel
decode + resize (bilinear, no augmentation), the same with the cache's resize (area averaging)
and with the antialiased bilinear resize the cache used before, and the cache read alone. Every file is read once before the first way (a warm OS file cache for all);
each way's dataset or iterator is built outside the timer (``build_s``), one batch is read as a
warm-up, then ``epochs`` timed epochs give the median images/s and its range. Peak memory is the
highest resident set size sampled while a way ran (and its rise over the way's start).

``bench train`` times training steps of every model the series trains, at its profile's size
(the notebook 02 CNN in the profile's and the candidate architectures, a DCGAN step, the class-
expert fusion, ResNet50 stage 2), in float32 and mixed precision (``mixed_bfloat16`` on a CPU,
``mixed_float16`` on a GPU), as a compiled graph and with XLA, on one in-memory batch; then the
input-bound share: the same model fed by the real pipeline (warm cache, augmentation) instead.

JSON of ``bench pipeline``: one size gives ``{"size", "image_size", "n_images", "batch_size",
"results": {way: {"images_per_s", "images_per_s_range", "seconds", "build_s", "repeats",
"peak_rss_mb", "rss_increase_mb", "work"}}, "ratios"}`` (DESIGN.md); several sizes give
``{"machine", "runs": [one such object per size]}``.
"""

from __future__ import annotations

import os
import platform
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

WAYS = {  # way -> the work one epoch does
    "imagedatagenerator": "decode+resize (PIL bilinear), augment, float32; serial (the seed way)",
    "naive_tfdata": "decode, area resize, augment, float32; serial tf.data, no cache",
    "decode_limit": "decode, bilinear resize, uint8; parallel; no augmentation",
    "decode_area": "decode, area resize (the cache's), uint8; parallel; no augmentation",
    "decode_antialias": "decode, antialiased bilinear resize, uint8; parallel; no augmentation",
    "cache_build": "decode, area resize, write the cache; uint8, no augmentation",
    "skinlib_cold": "decode, area resize, write the cache; augment, float32",
    "skinlib_warm": "cache read, shuffle, augment, float32",
    "skinlib_uint8": "cache read, shuffle, uint8 (augmentation runs in the model)",
    "read_limit": "cache read alone: uint8 slices of the memory-mapped file",
}
STAGES = tuple(WAYS)
COLD = ("cache_build", "skinlib_cold")  # ways that decode into an empty cache
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
    """Images/s, seconds and memory of reading once what ``make_batches()`` returns; the call
    itself (building a dataset or iterator) is timed apart as ``build_s``."""
    start = time.perf_counter()
    batches = make_batches()
    build = time.perf_counter() - start
    with rss_peak() as mem:
        start = time.perf_counter()
        n = consume(batches)
        seconds = time.perf_counter() - start
    return {"images_per_s": round(n / seconds, 1), "seconds": round(seconds, 3),
            "build_s": round(build, 3), "n_images": n, **mem}


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


def decode_limit_dataset(frame, image_size, batch_size: int = BATCH_SIZE,
                         method: str = "bilinear"):
    """Decode + resize alone (uint8), in parallel, batched and prefetched: no augmentation,
    no cache. ``method="bilinear"`` is the fastest resize; ``area`` is what the cache pays."""
    import tensorflow as tf

    from skinlib.image_cache import decode_resize

    size = tuple(int(v) for v in image_size)
    ds = tf.data.Dataset.from_tensor_slices(frame["path"].astype(str).to_numpy())
    ds = ds.map(lambda p: decode_resize(p, size, method), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def _cold_epoch(frame, size, batch_size: int, seed: int, folder: Path, output: str = "float32"):
    """One training epoch that first decodes every image into an empty cache ``folder``."""
    import shutil

    from skinlib.pipeline import make_dataset

    shutil.rmtree(folder, ignore_errors=True)  # untimed: runs when the generator is made

    def batches():
        yield from make_dataset(frame, image_size=size, batch_size=batch_size, training=True,
                                seed=seed, cache_dir=folder, output=output, progress=False)
    return batches()


def _cache_slices(frame, size, folder: Path, batch_size: int):
    """The frame's cached images as uint8 batches sliced from the memory-mapped shards."""
    from skinlib import image_cache

    folder_path, found = image_cache.lookup(frame["path"], size, cache_dir=folder,
                                            progress=False)
    for shard in found["shard"].unique():
        data = np.load(folder_path / f"{shard}.npy", mmap_mode="r")
        for i in range(0, len(data), batch_size):
            yield np.array(data[i:i + batch_size])


def _warm_files(frame) -> None:
    """Read every file once, so every way starts with the same warm OS file cache."""
    for path in frame["path"].astype(str):
        Path(path).read_bytes()


def _way_makers(frame, size, batch_size: int, seed: int, tmp: Path) -> dict:
    """way -> a function returning one epoch's batches (built, not yet read)."""
    from skinlib.pipeline import make_dataset

    warm = tmp / "cold"

    def skinlib(output):
        return lambda: make_dataset(frame, image_size=size, batch_size=batch_size,
                                    training=True, seed=seed, cache_dir=warm, output=output,
                                    progress=False)

    return {
        "imagedatagenerator": lambda: imagedatagenerator_batches(frame, size, batch_size, seed),
        "naive_tfdata": lambda: naive_dataset(frame, size, batch_size, seed),
        "decode_limit": lambda: decode_limit_dataset(frame, size, batch_size, "bilinear"),
        "decode_area": lambda: decode_limit_dataset(frame, size, batch_size, "area"),
        "decode_antialias": lambda: decode_limit_dataset(frame, size, batch_size, "antialias"),
        "cache_build": lambda: _cold_epoch(frame, size, batch_size, seed, warm, "uint8"),
        "skinlib_cold": lambda: _cold_epoch(frame, size, batch_size, seed, warm),
        "skinlib_warm": skinlib("float32"),
        "skinlib_uint8": skinlib("uint8"),
        "read_limit": lambda: _cache_slices(frame, size, warm, batch_size),
    }


def _summary(parts: list[dict], work: str) -> dict:
    """Several timed epochs of one way: median images/s with its range, highest memory."""
    rates = [p["images_per_s"] for p in parts]
    return {"images_per_s": round(float(np.median(rates)), 1),
            "images_per_s_range": [min(rates), max(rates)],
            "seconds": round(float(np.median([p["seconds"] for p in parts])), 3),
            "build_s": round(float(np.median([p["build_s"] for p in parts])), 3),
            "repeats": len(parts), "n_images": parts[0]["n_images"],
            "peak_rss_mb": max(p["peak_rss_mb"] for p in parts),
            "rss_increase_mb": max(p["rss_increase_mb"] for p in parts), "work": work}


def _measure_way(name: str, make, repeats: int, warmup) -> dict:
    """A warm-up batch, then ``repeats`` timed epochs of one way (an error is reported)."""
    def run():
        warmup()
        return _summary([_timed(make) for _ in range(repeats)], WAYS[name])
    return _guard(run)


def pipeline_run(frame, image_size, *, epochs: int = 3, batch_size: int = BATCH_SIZE,
                 seed: int = 0) -> dict:
    """Every way of :data:`WAYS` on the same frame at one size (height, width), in turn.

    Args:
        epochs: timed epochs (repeats) of each way; the figures are their median and range.

    Returns:
        ``{way: {"images_per_s", "images_per_s_range", "seconds", "build_s", "repeats",
        "n_images", "peak_rss_mb", "rss_increase_mb", "work"}}`` (``{"error": ...}`` for a way
        that failed). The warm and cache-read ways read the cache the last cold epoch wrote.
    """
    from itertools import islice

    if epochs < 1:
        raise ValueError(f"epochs={epochs}: time at least 1 epoch of each way (3 for a range)")
    size = tuple(int(v) for v in image_size)
    _warm_files(frame)
    out = {}
    with tempfile.TemporaryDirectory(prefix="skinlib_bench_cache_") as tmp:
        makers = _way_makers(frame, size, batch_size, seed, Path(tmp))
        for name, make in makers.items():
            first = (lambda: _cold_epoch(frame.iloc[:batch_size], size, batch_size, seed,
                                         Path(tmp) / "warmup")) if name in COLD else make
            out[name] = _measure_way(name, make, epochs,
                                     lambda first=first: consume(islice(first(), 1)))
    return out


def ratios(results: dict) -> dict:
    """Each way against the seed way and against the limits (None where a way failed)."""
    def r(a, b):
        x, y = results.get(a, {}).get("images_per_s"), results.get(b, {}).get("images_per_s")
        return round(x / y, 2) if x and y else None

    pairs = [("skinlib_warm", "imagedatagenerator"), ("skinlib_uint8", "imagedatagenerator"),
             ("skinlib_cold", "imagedatagenerator"), ("skinlib_warm", "naive_tfdata"),
             ("cache_build", "decode_limit"), ("cache_build", "decode_area"),
             ("skinlib_cold", "decode_limit"),
             ("decode_area", "decode_limit"), ("decode_antialias", "decode_limit"), ("skinlib_warm", "read_limit"),
             ("skinlib_uint8", "read_limit")]
    return {f"{a} / {b}": r(a, b) for a, b in pairs}


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
    """The pipeline figures as a text table: median images/s, range, memory, the work done."""
    runs = report.get("runs") or [report]
    lines = [f"{'size':>9}  {'way':18s} {'images/s':>9} {'range':>17} {'peak MB':>8} "
             f"{'+MB':>6}  work"]
    for run in runs:
        hw = "x".join(map(str, run["image_size"]))
        for name in STAGES:
            r = run["results"].get(name, {})
            if "error" in r:
                lines.append(f"{hw:>9}  {name:18s} error: {r['error']}")
                continue
            lo, hi = r["images_per_s_range"]
            lines.append(f"{hw:>9}  {name:18s} {r['images_per_s']:>9.1f} {lo:>8.0f}-{hi:<8.0f} "
                         f"{r['peak_rss_mb']:>8.0f} {r['rss_increase_mb']:>6.0f}  {r['work']}")
        lines += [f"{'':>9}  {k} = {v}" for k, v in run["ratios"].items()]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# training throughput
# --------------------------------------------------------------------------------------------

TRAIN_MODELS = ("cnn", "dcgan", "experts", "resnet50")
MODES = ("graph", "xla")


def _precisions() -> tuple[str, str]:
    """float32 and the mixed precision this machine has: bfloat16 on a CPU, float16 on a GPU."""
    import tensorflow as tf

    return "float32", ("mixed_float16" if tf.config.list_physical_devices("GPU")
                       else "mixed_bfloat16")


def _builder(name: str, p, n_classes: int, arch: str | None = None):
    """``(build, input_shape, batch_size)`` of one model of the series at its profile size.

    ``build()`` returns an uncompiled model; the DCGAN is the whole two-network train step.
    """
    if name == "cnn":
        from skinlib.models.cnn import build_cnn

        return (lambda: build_cnn(tuple(p.image_size), n_classes, arch=arch or p.cnn_arch),
                tuple(p.image_size), p.batch_size)
    if name == "experts":
        from skinlib.models.dcgan import build_discriminator
        from skinlib.models.experts import build_expert_model

        def build():
            discs = {dx: build_discriminator(p.gan_size, p.gan_filters) for dx in p.gan_classes}
            return build_expert_model(discs, tuple(p.image_size), n_classes)
        return build, tuple(p.image_size), p.batch_size
    if name == "resnet50":
        from skinlib.models.transfer import build_resnet50, set_stage

        def build():  # stage 2, the slower stage: the top of the base trains too
            model = build_resnet50(tuple(p.transfer_size), n_classes, weights=None,
                                   mixed_precision=False)
            set_stage(model, 2, p.transfer_unfreeze_from)
            return model
        return build, tuple(p.transfer_size), p.batch_size
    if name == "dcgan":
        from skinlib.models import dcgan

        def build():
            return dcgan.DCGAN(dcgan.build_generator(p.gan_size, p.gan_latent_dim, p.gan_filters),
                               dcgan.build_discriminator(p.gan_size, p.gan_filters),
                               p.gan_latent_dim, diffaugment=p.gan_diffaugment, seed=p.seed)
        return build, (p.gan_size, p.gan_size), p.gan_batch_size
    raise ValueError(f"model {name!r}: use one of {TRAIN_MODELS}")


def _compile(model, mode: str, steps_per_execution: int = 1) -> None:
    """Compile as the trainers do (Adam), eagerly, as a graph, or with XLA."""
    import keras

    from skinlib.models.dcgan import DCGAN

    kw = dict(run_eagerly=mode == "eager", jit_compile=mode == "xla",
              steps_per_execution=steps_per_execution)
    if isinstance(model, DCGAN):
        model.compile(**kw)
    else:
        model.compile(optimizer=keras.optimizers.Adam(1e-3), metrics=["accuracy"],
                      loss="sparse_categorical_crossentropy", **kw)


def memory_batches(shape, batch_size: int, n_classes: int = 7, seed: int = 0):
    """One in-memory batch (float32 [0, 255], labels), repeated: training without input cost."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 255, (batch_size, *shape, 3)).astype("float32")
    y = rng.integers(0, n_classes, batch_size).astype("int32")
    return tf.data.Dataset.from_tensors((x, y)).repeat()


def _timed_fits(model, data, steps: int, batch_size: int) -> float:
    """Images/s of the training steps of one ``fit`` of ``steps`` steps: from the start of the
    first batch to the end of the last, so that ``fit``'s own set-up and tear-down (on this
    project's CPU, waits of up to 0.8 s after the last step) are not counted as training."""
    import keras

    marks = []
    clock = keras.callbacks.LambdaCallback(
        on_train_batch_begin=lambda batch, logs: marks.append(time.perf_counter()),
        on_train_batch_end=lambda batch, logs: marks.append(time.perf_counter()))
    model.fit(data, epochs=1, steps_per_epoch=steps, verbose=0, callbacks=[clock])
    return steps * batch_size / (marks[-1] - marks[0])


def _rate_summary(rates: list[float], steps: int, first: float) -> dict:
    """Median images/s of the repeats with their range, as in ``bench pipeline``."""
    return {"images_per_s": round(float(np.median(rates)), 1),
            "images_per_s_range": [round(min(rates), 1), round(max(rates), 1)],
            "repeats": len(rates), "steps": steps, "first_steps_s": round(first, 2)}


def train_rate(build, data, *, mode: str, steps: int, batch_size: int,
               precision: str = "float32", steps_per_execution: int = 1,
               repeats: int = 3) -> dict:
    """Training images/s of ``build()`` fed by ``data`` (an endless dataset) in one mode: the
    median of ``repeats`` timed runs of ``steps`` steps, with their range.

    Two warm-up steps (tracing, XLA compilation) are timed apart as ``first_steps_s``.
    """
    import keras

    if mode not in ("eager", *MODES):
        raise ValueError(f"mode={mode!r}: use eager, graph or xla")
    keras.backend.clear_session()
    keras.mixed_precision.set_global_policy(precision)
    try:
        model = build()
        _compile(model, mode, steps_per_execution)
        start = time.perf_counter()
        model.fit(data, epochs=1, steps_per_epoch=2 * steps_per_execution, verbose=0)
        first = time.perf_counter() - start
        rates = [_timed_fits(model, data, steps, batch_size) for _ in range(max(1, repeats))]
    finally:
        keras.mixed_precision.set_global_policy("float32")
    return _rate_summary(rates, steps, first)


def _share(memory: dict, fed: dict) -> float | None:
    """The input-bound share of a step: 1 - (images/s fed by the pipeline) / (in memory),
    from each feed's fastest run where there are several: a shared machine's slow spells
    (on this project's 2-core CPU, about half speed for seconds to minutes) then move neither
    figure as much."""
    def best(r):
        return (r.get("images_per_s_range") or [None, r.get("images_per_s")])[1]
    a, b = best(memory), best(fed)
    return round(max(0.0, 1.0 - b / a), 3) if a and b else None


def _fed_rates(build, shape, batch_size: int, frame, p, steps: int, cache_dir,
               repeats: int = 3) -> dict:
    """One float32 graph model fed three ways, the timed runs interleaved (memory, pipeline,
    uint8, memory, ...) so that a slow spell of a shared machine hits all three alike:
    in-memory batches (``memory``), the real pipeline with augmentation on the CPU
    (``pipeline``), uint8 batches augmented inside the model (``pipeline_uint8_model_augment``,
    :func:`skinlib.pipeline.with_augment`, which shares the model's layers)."""
    import keras

    from skinlib.pipeline import make_dataset, with_augment

    common = dict(image_size=shape, batch_size=batch_size, training=True, augment=p.augment,
                  seed=p.seed, cache_dir=cache_dir, progress=False)
    keras.backend.clear_session()
    model = build()
    feeds = {"memory": (model, memory_batches(shape, batch_size)),
             "pipeline": (model, make_dataset(frame, **common).repeat()),
             "pipeline_uint8_model_augment": (with_augment(model, seed=p.seed), make_dataset(
                 frame, output="uint8", **common).repeat())}
    first, rates = {}, {name: [] for name in feeds}
    for name, (m, data) in feeds.items():
        if not m.compiled:
            _compile(m, "graph")
        start = time.perf_counter()
        m.fit(data, epochs=1, steps_per_epoch=2, verbose=0)
        first[name] = time.perf_counter() - start
    for _ in range(max(1, repeats)):
        for name, (m, data) in feeds.items():
            rates[name].append(_timed_fits(m, data, steps, batch_size))
    return {name: _rate_summary(rates[name], steps, first[name]) for name in feeds}


def _fed_with_shares(fed: dict) -> dict:
    """:func:`_fed_rates`' figures (or its error, as ``pipeline``) and the input-bound shares."""
    res = fed if "error" not in fed else {"pipeline": fed}
    memory = res.get("memory", {})
    return {**res, "input_bound_share": _share(memory, res["pipeline"]),
            "input_bound_share_uint8": _share(memory, res.get("pipeline_uint8_model_augment", {}))}


def _model_rates(build, shape, batch_size: int, *, steps: int, modes, precisions,
                 steps_per_execution: int, gan: bool, repeats: int = 3) -> dict:
    """Images/s of one model on in-memory batches in each precision and mode."""
    data = memory_batches(shape, batch_size)
    if gan:  # the DCGAN trains on real images in [-1, 1], no labels
        data = data.map(lambda x, y: x / 127.5 - 1.0)
    out = {}
    for precision in precisions:
        for mode in modes:
            out[f"{precision}_{mode}"] = _guard(lambda: train_rate(
                build, data, mode=mode, steps=steps, batch_size=batch_size,
                precision=precision, steps_per_execution=steps_per_execution, repeats=repeats))
    return out


def _bench_frame(data: str | None, n: int, tmp: Path):
    """The catalog the pipeline-fed runs read: ``data``'s first ``n`` rows, or fake images."""
    from skinlib.data import load_catalog, make_fake_dataset

    if data is None:
        data = str(make_fake_dataset(tmp / "fake", n_images=max(n, 140), seed=0))
    catalog = load_catalog(data, run_dir=tmp / "run")
    return catalog.iloc[:n].reset_index(drop=True)


def bench_train(profile: str = "quick", *, steps: int = 20, models=TRAIN_MODELS,
                modes=MODES, precisions=None, cnn_archs=None, data: str | None = None,
                steps_per_execution: int = 1, repeats: int = 3) -> dict:
    """Training images/s of each model of the series at its profile size, side by side.

    Args:
        models: among ``cnn``, ``dcgan``, ``experts``, ``resnet50``.
        modes: among ``eager``, ``graph``, ``xla``.
        precisions: Keras dtype policies (default float32 and this machine's mixed one).
        cnn_archs: CNN architectures to compare (default the profile's, ``gap``, ``gap1``).
        data: dataset the pipeline-fed runs read (default a fake dataset of the same sizes).
        steps_per_execution: Keras ``steps_per_execution`` of the in-memory runs.
        repeats: timed runs of ``steps`` steps per figure (the median is reported, with the
            range); the input-bound share compares the pipeline-fed and in-memory runs of one
            model, interleaved.

    Returns:
        ``{"profile", "steps", "precisions", "machine", "results": {model: {"image_size",
        "batch_size", "<precision>_<mode>": {...}, "pipeline": {...},
        "memory": {...}, "pipeline_uint8_model_augment": {...}, "input_bound_share", ...}}}``;
        the pipeline-fed figures are float32 graph, against ``memory`` (the same model on
        in-memory batches, timed in turn with them; the DCGAN trains from an in-memory array,
        so it has none).
    """
    from skinlib.config import get_profile

    p = get_profile(profile)
    precisions = tuple(precisions or _precisions())
    archs = list(dict.fromkeys(cnn_archs or (p.cnn_arch, "gap", "gap1")))
    runs = [(f"cnn_{a}" if m == "cnn" else m, m, a if m == "cnn" else None)
            for m in models for a in (archs if m == "cnn" else [None])]
    out = {"profile": p.name, "steps": steps, "repeats": repeats,
           "steps_per_execution": steps_per_execution, "precisions": list(precisions),
           "machine": machine(), "results": {}}
    with tempfile.TemporaryDirectory(prefix="skinlib_bench_train_") as tmp:
        frame = _bench_frame(data, max(256, 2 * p.batch_size), Path(tmp))
        for name, model, arch in runs:
            build, shape, bs = _builder(model, p, 7, arch)
            res = {"image_size": list(shape), "batch_size": bs}
            res.update(_model_rates(build, shape, bs, steps=steps, modes=modes,
                                    precisions=precisions, gan=name == "dcgan",
                                    steps_per_execution=steps_per_execution, repeats=repeats))
            if name != "dcgan":
                res.update(_fed_with_shares(_guard(lambda: _fed_rates(
                    build, shape, bs, frame, p, steps, Path(tmp) / "cache", repeats))))
            out["results"][name] = res
    return out


def format_train(report: dict) -> str:
    """The training figures as a text table."""
    lines = [f"profile {report['profile']}, {report['steps']} steps; precisions "
             f"{', '.join(report['precisions'])}",
             f"{'model':10s} {'size':>9} {'batch':>5} {'run':30s} {'images/s':>9} "
             f"{'first 2 steps s':>15}"]
    for name, res in report["results"].items():
        hw = "x".join(map(str, res["image_size"]))
        for run, r in res.items():
            if not isinstance(r, dict):
                continue
            head = f"{name:10s} {hw:>9} {res['batch_size']:>5} {run:30s}"
            lines.append(f"{head} error: {r['error']}" if "error" in r else
                         f"{head} {r['images_per_s']:>9.1f} {r['first_steps_s']:>15.2f}")
        for key in ("input_bound_share", "input_bound_share_uint8"):
            if key in res:
                lines.append(f"{name:10s} {key} = {res[key]}")
    return "\n".join(lines)

