"""Image-file validation and conversion for the data layer.

Every file a catalog points at must be a baseline RGB JPEG that decodes in full, so the input
pipeline can use one decoder and nothing fails deep inside TensorFlow. :func:`inspect_image`
says what a file is (ok, convertible, huge, unreadable) without changing any Pillow global;
:func:`convert_image` writes the RGB JPEG copy for the convertible and huge ones;
:func:`validate_rows` does both for every row of a catalog and counts each case.
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
import time
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError

if TYPE_CHECKING:
    from skinlib.data.report import LoadReport
    from skinlib.rundir import RunDir

MAX_PIXELS = 40_000_000  # larger images are downscaled, not decoded at full size
MAX_SIDE = 1024  # long side of a downscaled image
JPEG_QUALITY = 95
_SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def header_size(path: str | os.PathLike) -> tuple[int, int] | None:
    """``(width, height)`` read from a JPEG or PNG header without decoding; None if unknown."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(24)
            if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
                return struct.unpack(">II", head[16:24])
            if head[:2] != b"\xff\xd8":
                return None
            fh.seek(2)
            while True:
                byte = fh.read(1)
                while byte and byte != b"\xff":
                    byte = fh.read(1)
                while byte == b"\xff":
                    byte = fh.read(1)
                if not byte:
                    return None
                marker = byte[0]
                if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
                    continue
                length_bytes = fh.read(2)
                if len(length_bytes) < 2:
                    return None
                (length,) = struct.unpack(">H", length_bytes)
                if marker in _SOF_MARKERS:
                    data = fh.read(5)
                    if len(data) < 5:
                        return None
                    height, width = struct.unpack(">HH", data[1:5])
                    return width, height
                fh.seek(length - 2, os.SEEK_CUR)
    except OSError:
        return None


def inspect_image(path: str | os.PathLike) -> dict:
    """Open and fully decode one image file; say whether it is usable as it is.

    Returns:
        ``{"status", "problem", "format", "mode", "size"}`` where status is ``ok`` (an RGB JPEG
        that decodes in full), ``convert`` (readable but not an RGB JPEG: PNG, grayscale, RGBA,
        CMYK, 16-bit), ``huge`` (more than :data:`MAX_PIXELS` pixels, to be downscaled) or
        ``bad`` (empty, not an image, truncated or undecodable). ``problem`` is None when ok.
    """
    out = {"status": "ok", "problem": None, "format": None, "mode": None, "size": None}
    try:
        nbytes = os.path.getsize(path)
    except OSError as err:
        return {**out, "status": "bad", "problem": f"cannot read file ({err.strerror})"}
    if nbytes == 0:
        return {**out, "status": "bad", "problem": "empty file (0 bytes)"}
    dims = header_size(path)
    if dims and dims[0] * dims[1] > MAX_PIXELS:
        return {**out, "status": "huge", "size": list(dims),
                "problem": _huge_text(dims)}
    try:
        with Image.open(path) as im:
            out.update(format=im.format, mode=im.mode, size=list(im.size))
            if im.size[0] * im.size[1] > MAX_PIXELS:
                return {**out, "status": "huge", "problem": _huge_text(im.size)}
            im.load()
    except Image.DecompressionBombError:
        return {**out, "status": "bad", "problem": "image too large to decode safely"}
    except UnidentifiedImageError:
        return {**out, "status": "bad",
                "problem": "not an image Pillow can read (unknown format or random bytes)"}
    except OSError as err:
        text = str(err)
        kind = "truncated image" if "truncat" in text.lower() else "cannot decode image"
        return {**out, "status": "bad", "problem": f"{kind} ({text})"}
    except (ValueError, SyntaxError, struct.error, EOFError) as err:
        return {**out, "status": "bad", "problem": f"cannot decode image ({err})"}
    if out["format"] != "JPEG" or out["mode"] != "RGB":
        suffix = Path(path).suffix or "(no suffix)"
        return {**out, "status": "convert",
                "problem": f"{out['format']} {out['mode']} image named {suffix}: "
                           f"needs conversion to an RGB JPEG"}
    return out


def _huge_text(dims) -> str:
    """Problem text for an image above the pixel limit."""
    return (f"huge image {dims[0]}x{dims[1]} (more than {MAX_PIXELS:,} pixels): "
            f"needs downscaling to {MAX_SIDE} px on the long side")


def to_rgb(im: Image.Image) -> Image.Image:
    """An 8-bit RGB copy of any Pillow image (16-bit, grayscale, palette, RGBA, CMYK)."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(im, dtype=np.int64)
        top = 65535 if arr.max(initial=0) > 255 else 255
        arr8 = np.clip(arr * 255 // top, 0, 255).astype(np.uint8)
        return Image.fromarray(arr8, "L").convert("RGB")
    if im.mode == "F":
        arr = np.asarray(im, dtype=np.float64)
        span = max(float(arr.max() - arr.min()), 1e-12)
        arr8 = ((arr - arr.min()) / span * 255).astype(np.uint8)
        return Image.fromarray(arr8, "L").convert("RGB")
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return im.convert("RGB")


def convert_image(src: str | os.PathLike, dst: str | os.PathLike, *, huge: bool = False) -> Path:
    """Write ``src`` as an RGB JPEG (quality 95) at ``dst``, downscaled if larger than 1024 px.

    An existing ``dst`` newer than ``src`` is reused. ``huge`` images are opened with Pillow's
    decompression-bomb warning silenced locally (call this from one thread for those).
    """
    src, dst = Path(src), Path(dst)
    if dst.exists() and dst.stat().st_mtime_ns >= src.stat().st_mtime_ns and dst.stat().st_size:
        return dst
    dst.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings() if huge else contextlib.nullcontext():
        if huge:
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with Image.open(src) as im:
            if im.format == "JPEG":
                im.draft("RGB", (MAX_SIDE, MAX_SIDE))
            im.load()
            rgb = to_rgb(im)
    if max(rgb.size) > MAX_SIDE:
        rgb.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    tmp = dst.with_name(dst.name + ".tmp")
    rgb.save(tmp, "JPEG", quality=JPEG_QUALITY)
    os.replace(tmp, dst)
    return dst



def _workers() -> int:
    """Threads for decoding (Pillow releases the GIL while decoding)."""
    return max(2, min(16, 2 * (os.cpu_count() or 1)))


def validate_files(paths: list[str], cache_file: Path | None = None) -> dict[str, dict]:
    """:func:`inspect_image` of each path, in threads, cached by (size, mtime).

    With ``cache_file``, results of files whose size and mtime are unchanged are read from it,
    and the merged results are written back.
    """
    cache = {}
    if cache_file is not None and cache_file.exists():
        try:
            cache = json.loads(cache_file.read_text())
        except (OSError, ValueError):
            cache = {}
    results, todo, stats = {}, [], {}
    for path in paths:
        try:
            st = os.stat(path)
            stats[path] = [st.st_size, st.st_mtime_ns]
        except OSError:
            stats[path] = None
        entry = cache.get(path)
        if entry and stats[path] is not None and entry[:2] == stats[path]:
            results[path] = entry[2]
        else:
            todo.append(path)
    if todo:
        with ThreadPoolExecutor(max_workers=_workers()) as pool:
            for path, res in zip(todo, pool.map(inspect_image, todo)):
                results[path] = res
    if cache_file is not None and todo:
        cache.update({p: [*stats[p], results[p]] for p in todo if stats[p] is not None})
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_name(cache_file.name + ".tmp")
        tmp.write_text(json.dumps(cache))
        os.replace(tmp, cache_file)
    return results


def validate_rows(rows: pd.DataFrame, report: LoadReport, run_dir: RunDir | None,
                  dry_run: bool) -> pd.DataFrame:
    """Decode every image; convert or skip what is not a usable RGB JPEG; count each case.

    Convertible images are written under ``<run_dir>/converted/`` (``dry_run``: only counted;
    no ``run_dir``: skipped, since there is nowhere to write them).
    """
    started = time.perf_counter()
    cache = None if (run_dir is None or dry_run) else run_dir.logs / "validated.json"
    results = validate_files(list(rows["path"]), cache)
    report.seconds["validate"] = round(time.perf_counter() - started, 3)
    keep = np.ones(len(rows), dtype=bool)
    new_paths = list(rows["path"])
    counts = Counter()
    convert_jobs = []
    for i, (image_id, path) in enumerate(zip(rows["image_id"], rows["path"])):
        res = results[path]
        if res["status"] == "ok":
            continue
        if res["status"] == "bad":
            keep[i] = False
            counts["rows_unreadable"] += 1
            report.add(path, f"{res['problem']} (skipped)", "skipped", "unreadable_image")
        elif dry_run:
            counts["n_converted"] += 1
            counts["n_downscaled"] += res["status"] == "huge"
            report.add(path, f"{res['problem']} (will be converted)", "converted",
                       "needs_conversion")
        elif run_dir is None:
            keep[i] = False
            counts["rows_needs_conversion"] += 1
            report.add(path, f"{res['problem']}; skipped: pass a run folder (run_dir) so it can "
                             f"be converted into <run_dir>/converted/", "skipped",
                       "needs_conversion")
        else:
            convert_jobs.append((i, image_id, path, res))
    if convert_jobs:
        _convert_all(convert_jobs, run_dir, report, keep, new_paths, counts)
    for key in ("rows_unreadable", "rows_needs_conversion", "n_converted", "n_downscaled"):
        report.counts[key] = counts[key]
    rows = rows.assign(path=new_paths)
    return rows[keep].copy()


def _convert_all(jobs: list, run_dir: RunDir, report: LoadReport, keep: np.ndarray,
                 new_paths: list, counts: Counter) -> None:
    """Convert ``(i, image_id, path, result)`` jobs into ``<run_dir>/converted/``.

    Updates ``keep``, ``new_paths`` and ``counts`` in place: small images in threads, huge
    ones one at a time (their decompression-bomb warning is silenced locally).
    """
    started = time.perf_counter()
    out_dir = run_dir.inside("converted")
    small = [j for j in jobs if j[3]["status"] == "convert"]
    huge = [j for j in jobs if j[3]["status"] == "huge"]
    with ThreadPoolExecutor(max_workers=_workers()) as pool:
        done = list(pool.map(lambda j: _try_convert(j[2], out_dir / f"{j[1]}.jpg", False),
                             small))
    done += [_try_convert(j[2], out_dir / f"{j[1]}.jpg", True) for j in huge]
    for (i, _, path, res), (dst, error) in zip(small + huge, done):
        if error:
            keep[i] = False
            counts["rows_unreadable"] += 1
            report.add(path, f"conversion failed ({error}) (skipped)", "skipped",
                       "unreadable_image")
            continue
        new_paths[i] = str(dst)
        counts["n_converted"] += 1
        counts["n_downscaled"] += res["status"] == "huge"
        report.add(path, f"{res['problem']}: converted to {dst}", "converted",
                   "needs_conversion")
    report.seconds["convert"] = round(time.perf_counter() - started, 3)


def _try_convert(src, dst, huge: bool):
    """``(dst, None)`` after converting, or ``(None, reason)``."""
    try:
        return convert_image(src, dst, huge=huge), None
    except Exception as err:  # noqa: BLE001 - the file is reported, loading goes on
        return None, f"{type(err).__name__}: {err}"
