"""The decoded-image cache: each image is decoded and resized once per size, then read from disk.

Every ``make_dataset`` and ``load_array`` call for a size reads its images from here, so a
notebook that trains three models (02), nine (04) or one per fold (05) decodes the JPEGs once.

Layout: ``<cache_dir>/<height>x<width>_<method>/`` holds shards, each a memory-mappable
``<key>.npy`` (uint8, N x H x W x 3) and its index ``<key>.csv`` (``path``, ``bytes``,
``mtime_ns`` of each row). A file is identified by its path, size and modification time, so an
edited or replaced image is decoded again; ``<key>`` hashes the shard's index, so the same files
give the same shard. A frame's rows are looked up across the folder's shards; rows found in none
(new images, notebook 04's GAN PNGs, a changed file) are decoded, with a progress bar, into one
new shard. Shards whose files are all gone (a deleted temporary dataset) are removed when a new
shard is written.

The cache folder is ``cache_dir`` when given, else ``$SKINLIB_CACHE_DIR``, else
``$XDG_CACHE_HOME/skinlib/images`` (``~/.cache/skinlib/images``). Nothing is created until a
dataset is first read.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pandas as pd

# name -> (tf.image.resize method, antialias). "area" is the default: a downscale averages the
# source pixels each output pixel covers (antialiased), with TensorFlow's fast area kernel; a
# side that grows (e.g. 150 px to 224) makes it resize bilinearly (antialiased) instead, as
# area resizing would repeat pixels. "antialias" (bilinear, antialiased: the default until this version) gives
# pixels 0.5 grey levels apart on average, but its kernel runs single-threaded scalar loops on
# a CPU, 2-3x slower than decoding.
RESIZE_METHODS = {"area": ("area", False), "antialias": ("bilinear", True),
                  "bilinear": ("bilinear", False)}
DEFAULT_RESIZE = "area"
DECODE_BATCH = 128
KEY_COLUMNS = ["path", "bytes", "mtime_ns"]


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """The cache folder: ``cache_dir``, ``$SKINLIB_CACHE_DIR`` or ``~/.cache/skinlib/images``."""
    if cache_dir:
        return Path(cache_dir)
    if os.environ.get("SKINLIB_CACHE_DIR"):
        return Path(os.environ["SKINLIB_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "skinlib" / "images"


def size_folder(image_size: tuple[int, int], method: str = DEFAULT_RESIZE,
                cache_dir: str | os.PathLike | None = None) -> Path:
    """The folder of one (size, resize method): ``<root>/<h>x<w>_<method>``."""
    if method not in RESIZE_METHODS:
        raise ValueError(f"resize method {method!r}: use one of {sorted(RESIZE_METHODS)}")
    h, w = (int(s) for s in image_size)
    return cache_root(cache_dir) / f"{h}x{w}_{method}"


def decode_resize(path, image_size: tuple[int, int], method: str = DEFAULT_RESIZE):
    """Read one JPEG/PNG file and resize it to ``image_size`` (height, width) as uint8 RGB."""
    import tensorflow as tf

    raw = tf.io.read_file(path)
    img = tf.io.decode_image(raw, channels=3, expand_animations=False)
    img.set_shape([None, None, 3])
    return resize_uint8(img, image_size, method)


def resize_uint8(image, image_size: tuple[int, int], method: str = DEFAULT_RESIZE):
    """Resize one RGB image (a tensor or array, ``(H, W, 3)``) to ``image_size`` as uint8 with a
    method of :data:`RESIZE_METHODS` (``area`` resizes bilinearly when a side grows)."""
    import tensorflow as tf

    if method not in RESIZE_METHODS:
        raise ValueError(f"resize method {method!r}: use one of {sorted(RESIZE_METHODS)}")
    tf_method, antialias = RESIZE_METHODS[method]
    size = [int(s) for s in image_size]
    if method == "area":
        grows = tf.reduce_any(tf.shape(image)[:2] < size)
        img = tf.cond(grows, lambda: tf.image.resize(image, size, method="bilinear",
                                                       antialias=True),
                      lambda: tf.image.resize(image, size, method="area"))
    else:
        img = tf.image.resize(image, size, method=tf_method, antialias=antialias)
    return tf.cast(tf.clip_by_value(tf.round(img), 0, 255), tf.uint8)


def file_keys(paths) -> pd.DataFrame:
    """``path``, ``bytes``, ``mtime_ns`` of each file; a clear error naming missing files."""
    rows, missing = [], []
    for p in map(str, paths):
        try:
            st = os.stat(p)
        except OSError:
            missing.append(p)
            continue
        rows.append((p, st.st_size, st.st_mtime_ns))
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise FileNotFoundError(
            f"{len(missing)} image file(s) of the frame cannot be read: {missing[:3]}{more}. "
            "Reload the catalog (skinlib.data.load_catalog) or run `python -m skinlib data "
            "check` on the data folder")
    return pd.DataFrame(rows, columns=KEY_COLUMNS)


def _read_index(folder: Path) -> pd.DataFrame:
    """Every complete shard's rows: the key columns plus ``shard`` and ``row``."""
    parts = []
    for csv in sorted(folder.glob("*.csv")):
        if not csv.with_suffix(".npy").exists():
            continue
        part = pd.read_csv(csv, dtype={"path": str, "bytes": "int64", "mtime_ns": "int64"})
        parts.append(part.assign(shard=csv.stem, row=np.arange(len(part))))
    if not parts:
        return pd.DataFrame(columns=[*KEY_COLUMNS, "shard", "row"])
    return pd.concat(parts, ignore_index=True).drop_duplicates(KEY_COLUMNS)


def _shard_key(keys: pd.DataFrame) -> str:
    """A hash of a shard's index (its files, sizes and times, in order)."""
    text = keys[KEY_COLUMNS].to_csv(index=False)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def _bad_file(paths: list[str], image_size, method: str) -> tuple[str, str]:
    """The first file of ``paths`` TensorFlow cannot decode, and its error."""
    import tensorflow as tf

    for p in paths:
        try:
            decode_resize(tf.constant(p), image_size, method)
        except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError) as err:
            return p, err.message.splitlines()[0]
    return paths[0], "unknown decoding error"


def _decode_into(array: np.ndarray, paths: list[str], image_size, method: str,
                 progress: bool) -> None:
    """Decode ``paths`` in parallel into ``array`` (a progress bar; a bad file is named)."""
    import tensorflow as tf
    from tqdm.auto import tqdm

    size = tuple(int(s) for s in image_size)
    ds = (tf.data.Dataset.from_tensor_slices(np.asarray(paths, dtype=str))
          .map(lambda p: decode_resize(p, size, method), num_parallel_calls=tf.data.AUTOTUNE,
               deterministic=True)
          .batch(DECODE_BATCH).prefetch(2))
    h, w = size
    bar = tqdm(total=len(paths), unit="img", disable=not progress, mininterval=2.0,
               desc=f"decoding {len(paths)} images into the {h}x{w} {method} cache")
    it, start = iter(ds), 0
    try:
        while start < len(paths):
            try:
                batch = next(it).numpy()
            except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError):
                path, why = _bad_file(paths[start:start + DECODE_BATCH], size, method)
                raise ValueError(
                    f"{path}: TensorFlow cannot decode this image ({why}). Run `python -m "
                    "skinlib data check` on its folder, or drop the row from the frame") from None
            array[start:start + len(batch)] = batch
            start += len(batch)
            bar.update(len(batch))
    finally:
        bar.close()


def _prune(folder: Path, keep: str) -> None:
    """Remove shards (other than ``keep``) none of whose files exist any more."""
    for csv in folder.glob("*.csv"):
        if csv.stem == keep:
            continue
        try:
            paths = pd.read_csv(csv, usecols=["path"])["path"].astype(str)
        except (OSError, ValueError, pd.errors.ParserError):
            continue
        if not any(os.path.exists(p) for p in paths):
            for f in (csv.with_suffix(".npy"), csv):
                f.unlink(missing_ok=True)


def build_shard(folder: Path, keys: pd.DataFrame, image_size, method: str,
                progress: bool = True) -> str:
    """Decode the files of ``keys`` into a new shard of ``folder``; returns the shard's key.

    The ``.npy`` is written to a temporary name and renamed, then its index: a shard with an
    index is complete, and two processes building the same shard write the same bytes.
    """
    keys = keys.reset_index(drop=True)
    key = _shard_key(keys)
    folder.mkdir(parents=True, exist_ok=True)
    npy, tmp = folder / f"{key}.npy", folder / f"{key}.{os.getpid()}.tmp.npy"
    h, w = (int(s) for s in image_size)
    array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(keys), h, w, 3))
    try:
        _decode_into(array, keys["path"].tolist(), (h, w), method, progress)
        array.flush()
        del array
        os.replace(tmp, npy)
    finally:
        tmp.unlink(missing_ok=True)
    csv_tmp = folder / f"{key}.{os.getpid()}.tmp"
    keys[KEY_COLUMNS].to_csv(csv_tmp, index=False)
    os.replace(csv_tmp, folder / f"{key}.csv")
    _prune(folder, keep=key)
    return key


def lookup(paths, image_size, method: str = DEFAULT_RESIZE, *, cache_dir=None,
           progress: bool = True) -> tuple[Path, pd.DataFrame]:
    """Where each of ``paths`` lives in the cache (``shard``, ``row`` per path, in order),
    decoding the files the cache lacks into a new shard first; returns the size folder too."""
    folder = size_folder(image_size, method, cache_dir)
    keys = file_keys(paths)
    found = keys.merge(_read_index(folder), on=KEY_COLUMNS, how="left")
    todo = found.loc[found["shard"].isna(), KEY_COLUMNS].drop_duplicates()
    if len(todo):
        build_shard(folder, todo, image_size, method, progress)
        found = keys.merge(_read_index(folder), on=KEY_COLUMNS, how="left")
    return folder, found


def load_images(paths, image_size, method: str = DEFAULT_RESIZE, *, cache_dir=None,
                progress: bool = True) -> np.ndarray:
    """The uint8 images ``(n, h, w, 3)`` of ``paths``, in order, read from the cache (decoding
    only what it lacks)."""
    folder, found = lookup(paths, image_size, method, cache_dir=cache_dir, progress=progress)
    h, w = (int(s) for s in image_size)
    out = np.empty((len(found), h, w, 3), dtype=np.uint8)
    for shard, rows in found.groupby("shard", sort=False):
        data = np.load(folder / f"{shard}.npy", mmap_mode="r")
        src = rows["row"].to_numpy(dtype=np.int64)
        order = np.argsort(src, kind="stable")  # read the file forwards
        out[rows.index.to_numpy()[order]] = data[src[order]]
    return out
