"""Classify image files of any size with a skinlib model, as it was tested
(``python -m skinlib predict``).

The model is loaded once (Keras ``.keras`` archives only, safe mode on) with its model card
(:mod:`skinlib.card`): the decided class follows the card's decision rule, the probabilities
are calibrated with its temperature where one was fitted, and every image gets the input check
(:class:`skinlib.monitor.InputCheck`): how unlike the validation images it is, flagged above
the card's threshold. A model without a card still loads: argmax, with a one-line warning.

Images are decoded the way the input pipeline decodes them (RGB JPEGs by TensorFlow, other
formats by Pillow) and resized like it, so ``predict`` over the test images gives the test
split's figures. Folders are searched for JPEG/PNG files; unreadable files are listed, not
fatal. With ``gradcam_dir`` one Grad-CAM overlay PNG per image is written at the image's own
size, for the decided class.
"""

from __future__ import annotations

import io
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from skinlib import info


class ModelFileError(ValueError):
    """A model file that is not a Keras archive written by skinlib."""


# --------------------------------------------------------------------------------------------
# reading images
# --------------------------------------------------------------------------------------------

def decode_image(data: bytes, name: str = "image") -> np.ndarray:
    """Image bytes as uint8 RGB ``(H, W, 3)``; ValueError naming ``name`` if unreadable.

    RGB JPEGs are decoded by TensorFlow, as the input pipeline decodes them; PNG, grayscale,
    RGBA or CMYK files by Pillow (converted like ``data check`` converts them).
    """
    from PIL import Image, UnidentifiedImageError

    from skinlib.data.validation import MAX_PIXELS, to_rgb

    if not data:
        raise ValueError(f"{name}: empty file (0 bytes), not an image")
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.size[0] * im.size[1] > MAX_PIXELS:
                raise ValueError(f"{name}: {im.size[0]}x{im.size[1]} px is more than "
                                 f"{MAX_PIXELS:,} pixels: downscale it first")
            if im.format == "JPEG" and im.mode == "RGB":
                return _decode_tf(data, name)
            im.load()
            return np.asarray(to_rgb(im), dtype=np.uint8)
    except UnidentifiedImageError:
        raise ValueError(f"{name}: not a JPEG/PNG image Pillow can read") from None
    except (OSError, SyntaxError, Image.DecompressionBombError) as err:
        raise ValueError(f"{name}: cannot decode image ({err})") from None


def _decode_tf(data: bytes, name: str) -> np.ndarray:
    """A JPEG decoded by ``tf.io.decode_image`` (the input pipeline's decoder)."""
    import tensorflow as tf

    try:
        img = tf.io.decode_image(data, channels=3, expand_animations=False)
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as err:
        text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{name}: cannot decode image ({text[:150]})") from None
    return img.numpy()


def read_image(path) -> np.ndarray:
    """An image file as uint8 RGB ``(H, W, 3)``; ValueError naming the file if unreadable."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such image file")
    return decode_image(p.read_bytes(), str(p))


def resize_for_model(image: np.ndarray, size: tuple[int, int], method: str | None = None
                     ) -> np.ndarray:
    """Resize as the image cache does for training (:func:`skinlib.image_cache.resize_uint8`;
    ``method``: the model card's ``resize``, default the cache's), to float32."""
    from skinlib.image_cache import DEFAULT_RESIZE, resize_uint8

    return resize_uint8(image, size, method or DEFAULT_RESIZE).numpy().astype(np.float32)


def collect_images(inputs) -> list[Path]:
    """Files as given and every JPEG/PNG under each folder (sorted); a missing path is kept,
    so that reading it reports it."""
    from skinlib.data.catalog import walk

    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        out += walk(p)[1] if p.is_dir() else [p]
    return out


@dataclass
class Chunk:
    """Readable images of a chunk of paths, and the unreadable ones with their problem."""

    paths: list = field(default_factory=list)
    images: list = field(default_factory=list)
    failed: list = field(default_factory=list)


def iter_chunks(paths, *, chunk: int = 64, progress: bool = False):
    """Yield :class:`Chunk` s of at most ``chunk`` paths, with a tqdm bar over all images."""
    from tqdm.auto import tqdm

    paths = list(paths)
    with tqdm(total=len(paths), unit="image", disable=not progress, file=sys.stderr) as bar:
        for start in range(0, len(paths), chunk):
            part = Chunk()
            for p in paths[start:start + chunk]:
                try:
                    part.images.append(read_image(p))
                    part.paths.append(str(p))
                except (ValueError, OSError) as err:
                    text = str(err)
                    part.failed.append({"path": str(p),
                                        "problem": text.removeprefix(f"{p}: ")})
            yield part
            bar.update(len(paths[start:start + chunk]))  # read and processed by the caller


# --------------------------------------------------------------------------------------------
# the model and its card
# --------------------------------------------------------------------------------------------

def load_model(path):
    """Load a skinlib model; ModelFileError (one line) for anything else.

    Returns:
        ``(model, input size (h, w), dataset key)``.
    """
    import keras

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such model file (train one with notebook 02 or 06)")
    if p.suffix != ".keras" or not zipfile.is_zipfile(p):
        raise ModelFileError(f"{p}: not a Keras .keras archive (pickles, .h5 and other formats "
                             "are refused): pass models/<name>.keras from a skinlib run folder")
    try:
        model = keras.models.load_model(p, compile=False, safe_mode=True)
    except Exception as err:  # a broken or foreign archive: say so in one line
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelFileError(f"{p}: cannot load as a Keras model ({first[:200]})") from None
    return (model, *check_model(model, p))


def check_model(model, path="model") -> tuple[tuple[int, int], str]:
    """Input size and dataset of a skinlib classifier; ModelFileError if it is not one."""
    ins, outs = list(model.inputs), list(model.outputs)
    if len(ins) != 1 or len(outs) != 1:
        raise ModelFileError(f"{path}: has {len(ins)} input(s) and {len(outs)} output(s); a "
                             "skinlib classifier has one image input and one output")
    shape, out = tuple(ins[0].shape), tuple(outs[0].shape)
    if len(shape) != 4 or shape[-1] != 3 or None in shape[1:3]:
        raise ModelFileError(f"{path}: input shape {shape} is not (None, h, w, 3): not a "
                             "skinlib image classifier")
    datasets = [k for k, meta in info.DATASETS.items()
                if len(out) == 2 and out[1] == len(meta["classes"])]
    if not datasets:
        known = ", ".join(f"{k}: {len(m['classes'])} classes" for k, m in info.DATASETS.items())
        raise ModelFileError(f"{path}: output shape {out} matches no dataset skinlib knows "
                             f"({known}): not a skinlib classifier")
    return (int(shape[1]), int(shape[2])), datasets[0]


class Predictor:
    """A model loaded once with its card: classify images, check them, explain them."""

    def __init__(self, model_path):
        from skinlib import card, monitor

        self.path = Path(model_path)
        self.model, self.size, self.dataset = load_model(self.path)
        self.classes = info.classes(self.dataset)
        self.card, self.warning = card.load(self.path, self.classes)
        self.emb_model = monitor.embedding_model(self.model)

    def classify(self, images, paths=None) -> dict:
        """Decided class, calibrated probabilities, argmax and input check of uint8 images.

        Returns:
            ``{"features", "x" (model inputs), "probs" (calibrated), "decided", "argmax",
            "check" (InputCheck.score dict, or None without a card)}``.
        """
        from skinlib import monitor

        x = np.stack([resize_for_model(im, self.size, self.card.resize) for im in images])
        feats = monitor.features(self.model, images, self.size, paths=paths, x=x,
                                 emb_model=self.emb_model)
        check = (None if self.card.check is None else
                 self.card.check.score(feats.embeddings, feats.stats))
        return {"features": feats, "x": x, "probs": self.card.calibrate(feats.probs),
                "decided": self.card.decide(feats.probs), "argmax": feats.probs.argmax(axis=1),
                "check": check}

    def features(self, images, paths=None):
        """:class:`skinlib.monitor.Features` of uint8 images, resized as this model's training
        images were (its card's ``resize``)."""
        from skinlib import monitor

        return monitor.features(self.model, images, self.size, paths=paths,
                                emb_model=self.emb_model, resize=self.card.resize)

    def file_features(self, paths, *, progress: bool = False):
        """:class:`skinlib.monitor.Features` of image files, read in chunks (unreadable files
        are counted in ``skipped``), resized as :meth:`features` does."""
        from skinlib import monitor

        return monitor.features_from_files(self.model, paths, self.size, progress=progress,
                                           resize=self.card.resize)

    def gradcam(self, x, classes, images) -> list[np.ndarray]:
        """Grad-CAM overlays (uint8 RGB at each image's own size) for the given classes."""
        from skinlib import explain

        maps = explain.gradcam(self.model, x, classes)
        return [explain.overlay(im, cam) for im, cam in zip(images, maps)]

    def results(self, out: dict, images, top: int = 3) -> list[dict]:
        """One result dict per image of a :meth:`classify` output."""
        names, rows = info.class_names(self.dataset), []
        for i, im in enumerate(images):
            c, a = self.classes[out["decided"][i]], self.classes[out["argmax"][i]]
            chk = out["check"]
            rows.append({"image": out["features"].paths[i],
                         "size": [int(im.shape[1]), int(im.shape[0])], "class": c,
                         "name": names[c], "argmax": a,
                         "probs": {k: float(v) for k, v in zip(self.classes, out["probs"][i])},
                         "top": top_classes(out["probs"][i], self.dataset, top),
                         "input_score": None if chk is None else round(float(chk["score"][i]), 2),
                         "flagged": None if chk is None else bool(chk["flagged"][i]),
                         "overlay": None})
        return rows

    def header(self) -> dict:
        """What a report says about the model."""
        return {"model": str(self.path), "input_size": list(self.size), "dataset": self.dataset,
                "card": self.card.describe(), "rule": self.card.rule["decision"],
                "temperature": self.card.temperature,
                "threshold": None if self.card.check is None else self.card.check.threshold,
                "warning": self.warning}


def top_classes(probs: np.ndarray, dataset: str, k: int = 3) -> list[dict]:
    """The ``k`` most probable classes of one probability vector."""
    classes, names = info.classes(dataset), info.class_names(dataset)
    order = np.argsort(-probs)[:max(1, k)]
    return [{"class": classes[i], "name": names[classes[i]], "prob": round(float(probs[i]), 4)}
            for i in order]


# --------------------------------------------------------------------------------------------
# files and folders
# --------------------------------------------------------------------------------------------

def _overlay_path(folder: Path, image: Path, used: set) -> Path:
    """``DIR/<stem>_gradcam.png``, numbered when two inputs share a stem."""
    path, n = folder / f"{image.stem}_gradcam.png", 1
    while path in used:
        n += 1
        path = folder / f"{image.stem}_{n}_gradcam.png"
    used.add(path)
    return path


def _write_overlays(predictor: Predictor, out: dict, images, rows: list[dict], folder: Path,
                    used: set) -> None:
    """Write one Grad-CAM overlay PNG per image (decided class) and note its path."""
    import cv2

    for row, ov in zip(rows, predictor.gradcam(out["x"], out["decided"], images)):
        path = _overlay_path(folder, Path(row["image"]), used)
        if not cv2.imwrite(str(path), cv2.cvtColor(ov, cv2.COLOR_RGB2BGR)):
            raise OSError(f"{path}: cannot write the overlay PNG")
        row["overlay"] = str(path)


def predict_files(model_path, inputs, *, gradcam_dir=None, top: int = 3,
                  progress: bool | None = None, chunk: int = 64) -> dict:
    """Classify image files and folders (and write Grad-CAM overlays) with one model load.

    Args:
        inputs: image files and folders (searched for JPEG/PNG at any depth).
        progress: a tqdm bar on stderr (default: when there are more than 20 images).

    Returns:
        ``{"model", "input_size", "dataset", "card", "rule", "temperature", "threshold",
        "warning", "results": [{"image", "size", "class", "name", "argmax", "probs", "top",
        "input_score", "flagged", "overlay"}], "unreadable": [{"path", "problem"}]}``.
    """
    paths = collect_images(inputs)
    if not paths:
        raise ValueError(f"no JPEG/PNG image in {', '.join(map(str, inputs))}")
    predictor = Predictor(model_path)
    report = {**predictor.header(), "results": [], "unreadable": []}
    folder, used = (Path(gradcam_dir) if gradcam_dir is not None else None), set()
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    show = len(paths) > 20 if progress is None else progress
    for part in iter_chunks(paths, chunk=chunk, progress=show):
        report["unreadable"] += part.failed
        if not part.images:
            continue
        out = predictor.classify(part.images, part.paths)
        rows = predictor.results(out, part.images, top)
        if folder is not None:
            _write_overlays(predictor, out, part.images, rows, folder, used)
        report["results"] += rows
    if not report["results"]:
        bad = report["unreadable"]
        first = f"{bad[0]['path']}: {bad[0]['problem']}"
        raise ValueError(first if len(bad) == 1 else
                         f"none of the {len(bad)} images could be read (first: {first})")
    return report


def write_csv(report: dict, path) -> Path:
    """The results as CSV: ``path``, ``class`` (decided), one probability column per class
    code, ``input_score``, ``flagged``."""
    import pandas as pd

    classes = info.classes(report["dataset"])
    rows = [{"path": r["image"], "class": r["class"], **r["probs"],
             "input_score": r["input_score"], "flagged": r["flagged"]}
            for r in report["results"]]
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=["path", "class", *classes, "input_score", "flagged"]).to_csv(
        out, index=False)
    return out


def _result_line(r: dict, show_argmax: bool) -> str:
    """One image's line of text output."""
    tops = ", ".join(f"{t['class']} {t['prob']:.3f}" for t in r["top"])
    decided = r["class"] + (f" (argmax {r['argmax']})" if show_argmax and r["argmax"] !=
                            r["class"] else "")
    check = ("" if r["input_score"] is None else
             f" | input check {r['input_score']:.1f}"
             + (" FLAGGED: unlike the validation images, do not trust this result"
                if r["flagged"] else " ok"))
    return (f"{r['image']} ({r['size'][0]}x{r['size'][1]}): {decided} | {tops}{check}"
            + (f"  -> {r['overlay']}" if r["overlay"] else ""))


def format_text(report: dict, show_argmax: bool = False) -> str:
    """The human-readable lines ``predict`` prints."""
    h, w = report["input_size"]
    lines = [f"model {report['model']}: input {h}x{w} px (images are resized to it), "
             f"{info.DATASETS[report['dataset']]['name']} classes; {report['card']}"]
    lines += [_result_line(r, show_argmax) for r in report["results"]]
    flagged = sum(bool(r["flagged"]) for r in report["results"])
    if flagged:
        lines.append(f"{flagged} of {len(report['results'])} image(s) flagged by the input check")
    if report["unreadable"]:
        lines.append(f"{len(report['unreadable'])} image(s) could not be read (skipped):")
        lines += [f"  {u['path']}: {u['problem']}" for u in report["unreadable"]]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# one uploaded image (the upload cell of notebook 07)
# --------------------------------------------------------------------------------------------

def uploaded_files(value) -> list[tuple[str, bytes]]:
    """``(name, bytes)`` of each file of an ipywidgets ``FileUpload.value``: a tuple of dicts
    (ipywidgets 8) or a dict name -> dict (ipywidgets 7, as in Colab)."""
    if isinstance(value, dict):
        return [(str(k), bytes(v["content"])) for k, v in value.items()]
    return [(str(v.get("name", "upload")), bytes(v["content"])) for v in value]


def explain_upload(predictor: Predictor, data: bytes, name: str = "upload"):
    """Decided class, calibrated probabilities, input check and Grad-CAM overlay of one image
    given as bytes.

    Returns:
        ``(result, figure)``: the result dict of :meth:`Predictor.results` (plus ``rule``) and
        a figure of the image, its Grad-CAM overlay and the probabilities.
    """
    image = decode_image(data, name)
    out = predictor.classify([image], [name])
    row = predictor.results(out, [image], top=len(predictor.classes))[0]
    row["rule"] = predictor.card.rule["decision"]
    overlay = predictor.gradcam(out["x"], out["decided"], [image])[0]
    from skinlib import plots

    return row, plots.upload_result(image, overlay, row)


# --------------------------------------------------------------------------------------------
# ``python -m skinlib bench predict``
# --------------------------------------------------------------------------------------------

def _bench_images(folder: Path, n: int) -> Path:
    """``n`` 600x450 JPEGs (the fake dataset's pictures, upscaled) in ``folder/images``."""
    from PIL import Image

    from skinlib.data import make_fake_dataset

    root = make_fake_dataset(folder / "fake", n_images=max(n, 70), seed=0)
    out = folder / "images"
    out.mkdir()
    for src in sorted(root.glob("*/ISIC_*.jpg"))[:n]:
        with Image.open(src) as im:
            im.convert("RGB").resize((600, 450), Image.BICUBIC).save(out / src.name, quality=90)
    return out


def bench(model_path=None, *, n: int = 20, repeats: int = 3) -> dict:
    """Seconds ``predict --gradcam`` takes on ``n`` full-size (600x450) JPEGs: in-process
    (model load included) as the median of ``repeats``, and once as the whole command
    (Python and TensorFlow start-up included)."""
    import os
    import subprocess
    import tempfile
    import time

    if n < 1 or repeats < 1:
        raise ValueError(f"--n {n} / --repeats {repeats}: give at least 1 of each")
    with tempfile.TemporaryDirectory(prefix="skinlib_bench_predict_") as tmp:
        tmp = Path(tmp)
        images = _bench_images(tmp, n)
        label = str(model_path or "an untrained baseline CNN (gap, 48x64 input)")
        if model_path is None:
            from skinlib.models.cnn import build_cnn

            model_path = tmp / "cnn.keras"
            build_cnn((48, 64), 7, arch="gap").save(model_path)
        times = []
        for r in range(repeats):
            start = time.perf_counter()
            predict_files(model_path, [images], gradcam_dir=tmp / f"cams{r}", progress=False)
            times.append(time.perf_counter() - start)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "skinlib", "predict", "--model", str(model_path),
                        "--gradcam", str(tmp / "cams_cli"), str(images)], check=True,
                       capture_output=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
        command = time.perf_counter() - start
    return {"n_images": n, "image_size": [600, 450], "model": label, "gradcam": True,
            "seconds_median": float(np.median(times)), "seconds_range": [min(times), max(times)],
            "seconds_command": command, "repeats": repeats, "cpus": os.cpu_count(),
            "load_average_1min": os.getloadavg()[0]}


def format_bench(report: dict) -> str:
    """The lines ``bench predict`` prints."""
    lo, hi = report["seconds_range"]
    return (f"predict --gradcam on {report['n_images']} JPEGs of 600x450 ({report['model']}):\n"
            f"  in-process (model load included): median {report['seconds_median']:.1f} s "
            f"(range {lo:.1f}-{hi:.1f} s, {report['repeats']} repeats)\n"
            f"  whole command (Python and TensorFlow start-up included): "
            f"{report['seconds_command']:.1f} s\n"
            f"  on {report['cpus']} CPU(s), 1-minute load average "
            f"{report['load_average_1min']:.1f}: timings on a shared machine vary")
