"""Classify JPEG/PNG files of any size with a skinlib model (``python -m skinlib predict``).

The model is loaded once (Keras ``.keras`` archives only, safe mode on), every image is read
with Pillow, converted to RGB and resized the way the input pipeline resizes, and the top
classes are printed (or written as JSON). With ``--gradcam DIR`` one Grad-CAM overlay PNG per
image is written at the image's own size.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from skinlib import info


class ModelFileError(ValueError):
    """A model file that is not a Keras archive written by skinlib."""


def read_image(path) -> np.ndarray:
    """An image file as uint8 RGB ``(H, W, 3)``; ValueError naming the file if unreadable."""
    from PIL import Image, UnidentifiedImageError

    from skinlib.data.validation import to_rgb

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such image file")
    if p.stat().st_size == 0:
        raise ValueError(f"{p}: empty file (0 bytes), not an image")
    try:
        with Image.open(p) as im:
            im.load()
            return np.asarray(to_rgb(im), dtype=np.uint8)
    except UnidentifiedImageError:
        raise ValueError(f"{p}: not a JPEG/PNG image Pillow can read") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise ValueError(f"{p}: cannot decode image ({err})") from None


def resize_for_model(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize like :func:`skinlib.pipeline.decode_resize` (bilinear, antialiased) to float32."""
    import tensorflow as tf

    out = tf.image.resize(image, size, method="bilinear", antialias=True)
    return tf.clip_by_value(tf.round(out), 0, 255).numpy().astype(np.float32)


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


def top_classes(probs: np.ndarray, dataset: str, k: int = 3) -> list[dict]:
    """The ``k`` most probable classes of one probability vector."""
    classes, names = info.classes(dataset), info.class_names(dataset)
    order = np.argsort(-probs)[:max(1, k)]
    return [{"class": classes[i], "name": names[classes[i]], "prob": round(float(probs[i]), 4)}
            for i in order]


def _overlay_path(folder: Path, image: Path, used: set) -> Path:
    """``DIR/<stem>_gradcam.png``, numbered when two inputs share a stem."""
    path, n = folder / f"{image.stem}_gradcam.png", 1
    while path in used:
        n += 1
        path = folder / f"{image.stem}_{n}_gradcam.png"
    used.add(path)
    return path


def predict_files(model_path, image_paths, *, gradcam_dir=None, top: int = 3) -> dict:
    """Classify image files (and write Grad-CAM overlays) with one model load.

    Returns:
        ``{"model", "input_size", "dataset", "results": [{"image", "size" (w, h), "top",
        "overlay"}]}``.
    """
    images = [read_image(p) for p in image_paths]  # fail on a bad file before loading
    model, size, dataset = load_model(model_path)
    batch = np.stack([resize_for_model(im, size) for im in images])
    probs = np.asarray(model.predict(batch, batch_size=32, verbose=0), dtype=np.float64)
    overlays = [None] * len(images)
    if gradcam_dir is not None:
        import cv2

        from skinlib import explain

        folder = Path(gradcam_dir)
        folder.mkdir(parents=True, exist_ok=True)
        maps = explain.gradcam(model, batch, probs.argmax(axis=1))
        used: set = set()
        for i, (im, cam) in enumerate(zip(images, maps)):
            out = _overlay_path(folder, Path(image_paths[i]), used)
            if not cv2.imwrite(str(out), cv2.cvtColor(explain.overlay(im, cam),
                                                      cv2.COLOR_RGB2BGR)):
                raise OSError(f"{out}: cannot write the overlay PNG")
            overlays[i] = str(out)
    results = [{"image": str(p), "size": [int(im.shape[1]), int(im.shape[0])],
                "top": top_classes(pr, dataset, top), "overlay": ov}
               for p, im, pr, ov in zip(image_paths, images, probs, overlays)]
    return {"model": str(model_path), "input_size": list(size), "dataset": dataset,
            "results": results}


def format_text(report: dict) -> str:
    """The human-readable lines ``predict`` prints."""
    h, w = report["input_size"]
    lines = [f"model {report['model']}: input {h}x{w} px (images are resized to it), "
             f"{info.DATASETS[report['dataset']]['name']} classes"]
    for r in report["results"]:
        tops = ", ".join(f"{t['class']} {t['prob']:.3f}" for t in r["top"])
        lines.append(f"{r['image']} ({r['size'][0]}x{r['size'][1]}): {tops}"
                     + (f"  -> {r['overlay']}" if r["overlay"] else ""))
    return "\n".join(lines)

