"""The fake dataset: a tiny HAM10000 look-alike for tests, smoke runs and offline demos.

Not to be confused with *synthetic* images, which the GAN notebooks make. The data source
keyword ``synthetic`` (``--data synthetic``, the smoke profile) still selects this dataset.
"""

from __future__ import annotations

import colorsys
import csv
import json
import shutil
from pathlib import Path

import numpy as np

from skinlib import info
from skinlib.data.report import DataError

FAKE_VERSION = 2  # 2: the metadata gained the Dataverse `dataset` column (image source)
FAKE_MARKER = "fake_data.json"
_SITE_SEED = 2018  # second word of the source-site generator's seed (images keep their own)
_LOCALIZATIONS = ["back", "lower extremity", "trunk", "upper extremity", "abdomen", "face",
                  "chest", "foot", "neck", "scalp", "hand", "ear", "genital", "acral", "unknown"]
_DX_TYPES = ["histo", "follow_up", "consensus", "confocal"]
_HEADER = ["lesion_id", "image_id", "dx", "dx_type", "age", "sex", "localization", "dataset"]


def make_fake_dataset(root, n_images: int = 420, seed: int = 42) -> Path:
    """Write a tiny HAM10000 look-alike in the Kaggle layout under ``root``; return ``root``.

    ``HAM10000_metadata.csv`` (the Dataverse form, with the image source in ``dataset``) plus
    ``HAM10000_images_part_1/2/ISIC_*.jpg`` (200x150 RGB), all classes with HAM's skew (the most
    frequent class about 55%), about 1.35 images per lesion, and class-dependent colour, shape
    and texture so a small CNN learns it quickly. Each lesion gets one of HAM's four source
    names, drawn with HAM's shares from its own generator (the pictures do not depend on it).
    The same seed gives the same bytes; a complete set for the same ``(n_images, seed)`` is
    reused.
    """
    root = Path(root).expanduser()
    wanted = {"n_images": int(n_images), "seed": int(seed), "version": FAKE_VERSION}
    if _reusable(root, wanted):
        return root
    records, pictures, lesion_of = _fake_lesions(int(n_images), seed)
    sites = _fake_sites(max(lesion_of) + 1, seed)
    records = [record + [sites[lesion]] for record, lesion in zip(records, lesion_of)]
    _write(root, records, pictures)
    (root / FAKE_MARKER).write_text(json.dumps(wanted) + "\n")
    return root


def _reusable(root: Path, wanted: dict) -> bool:
    """True if ``root`` holds our complete set for ``wanted``; clears an outdated set of ours."""
    marker = root / FAKE_MARKER
    metadata = root / info.HAM10000["metadata_csv"]
    if not marker.exists():
        if metadata.exists() or any(root.glob("*/ISIC_*")):
            raise DataError(f"{root} already holds data that make_fake_dataset did not write "
                            f"(no {FAKE_MARKER}): pass an empty or new folder")
        return False
    try:
        same = json.loads(marker.read_text()) == wanted
    except (OSError, ValueError):
        same = False
    n_found = sum(len(list((root / f"HAM10000_images_part_{k}").glob("ISIC_*.jpg")))
                  for k in (1, 2))
    if same and n_found == wanted["n_images"] and metadata.exists():
        return True
    marker.unlink()
    for k in (1, 2):  # an older fake set of ours: replace it
        shutil.rmtree(root / f"HAM10000_images_part_{k}", ignore_errors=True)
    return False


def _fake_counts(n_images: int, n_classes: int, major: int) -> list[int]:
    """Images per class: one class about 55%, the rest shared unevenly, each at least ~15."""
    floor = max(1, min(15, n_images // (2 * n_classes)))
    minor_share = np.linspace(1.6, 0.8, n_classes - 1)
    minor_share = 0.45 * minor_share / minor_share.sum()
    counts = [0] * n_classes
    minors = [i for i in range(n_classes) if i != major]
    for i, share in zip(minors, minor_share):
        counts[i] = max(floor, int(round(share * n_images)))
    counts[major] = n_images - sum(counts)
    if counts[major] < floor:
        raise ValueError(f"n_images={n_images} is too small for {n_classes} classes: use at "
                         f"least {n_classes * 4}")
    return counts


def _fake_lesions(n_images: int, seed: int) -> tuple[list, list, list]:
    """Metadata rows (without the source), ``(image_id, pixels)`` pairs and each row's lesion."""
    classes = info.classes("ham10000")
    major = classes.index("nv") if "nv" in classes else 0
    counts = _fake_counts(n_images, len(classes), major)
    rng = np.random.default_rng(seed)
    image_numbers = 24306 + rng.permutation(n_images)
    records, pictures, lesion_of = [], [], []
    lesion_no = 0
    for cls, count in enumerate(counts):
        made = 0
        while made < count:
            size = min(int(rng.choice([1, 2, 3], p=[0.72, 0.21, 0.07])), count - made)
            lesion = {"cy": rng.uniform(55, 95), "cx": rng.uniform(75, 125),
                      "angle": rng.uniform(0, np.pi), "lobes": int(rng.integers(3, 7)),
                      "phase": rng.uniform(0, 2 * np.pi),
                      "radius": (22 + 5 * (cls % 4)) * rng.uniform(0.85, 1.15),
                      "colour": _class_colour(cls, len(classes)) * rng.uniform(0.9, 1.1, 3)}
            age = "" if rng.random() < 0.01 else f"{float(rng.integers(1, 18) * 5):.1f}"
            sex = str(rng.choice(["male", "female"], p=[0.54, 0.46]))
            loc = str(rng.choice(_LOCALIZATIONS))
            dx_type = str(rng.choice(_DX_TYPES, p=[0.53, 0.37, 0.09, 0.01]))
            for _ in range(size):
                image_id = f"ISIC_{int(image_numbers[len(pictures)]):07d}"
                pictures.append((image_id, _fake_image(rng, cls, lesion)))
                records.append([f"HAM_{lesion_no:07d}", image_id, classes[cls], dx_type, age,
                                sex, loc])
                lesion_of.append(lesion_no)
            made += size
            lesion_no += 1
    return records, pictures, lesion_of


def _fake_sites(n_lesions: int, seed: int) -> list[str]:
    """One HAM10000 source name per lesion, drawn with HAM's shares (its own generator)."""
    sources = info.HAM10000["sources"]
    shares = np.array(list(sources.values()), float)
    rng = np.random.default_rng([int(seed), _SITE_SEED])
    return [str(s) for s in rng.choice(list(sources), size=n_lesions, p=shares / shares.sum())]


def _fake_image(rng: np.random.Generator, cls: int, lesion: dict):
    """One 200x150 RGB uint8 picture: a class-coloured, class-shaped blob on skin + noise."""
    h, w = 150, 200
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    skin = np.array([214, 168, 150], np.float32) + rng.normal(0, 6, 3)
    img = np.broadcast_to(skin, (h, w, 3)).copy()
    cy = lesion["cy"] + rng.normal(0, 3)
    cx = lesion["cx"] + rng.normal(0, 3)
    angle = lesion["angle"] + rng.normal(0, 0.2)
    dy, dx = yy - cy, xx - cx
    u = dx * np.cos(angle) + dy * np.sin(angle)
    v = -dx * np.sin(angle) + dy * np.cos(angle)
    radius = lesion["radius"] * (1 + rng.normal(0, 0.05))
    aspect = 1.0 + 0.9 * (cls % 3) / 2  # round, oval, elongated
    r = np.sqrt((u / radius) ** 2 + (v * aspect / radius) ** 2)
    if cls % 2:  # irregular border for every other class
        theta = np.arctan2(v, u)
        r = r * (1 + 0.18 * np.sin(lesion["lobes"] * theta + lesion["phase"]))
    mask = np.clip((1.15 - r) / 0.3, 0, 1)[..., None]
    texture_kind = cls % 4
    if texture_kind == 1:  # rings
        texture = 0.5 + 0.5 * np.sin(r * 14)
    elif texture_kind == 2:  # dots
        texture = 0.5 + 0.5 * np.sin(xx * 0.7) * np.sin(yy * 0.7)
    elif texture_kind == 3:  # dark core
        texture = np.clip(1.2 - r, 0, 1)
    else:
        texture = np.full_like(r, 0.5)
    colour = lesion["colour"] * (0.75 + 0.5 * texture[..., None])
    img = img * (1 - mask) + colour * mask
    img += rng.normal(0, 10, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _class_colour(cls: int, n_classes: int) -> np.ndarray:
    """A distinct dark RGB colour per class index (hues spread around the colour wheel)."""
    hue = cls / n_classes
    value = 0.35 + 0.35 * ((cls * 3) % n_classes) / n_classes
    return np.array(colorsys.hsv_to_rgb(hue, 0.75, value), np.float32) * 255


def _write(root: Path, records: list, pictures: list) -> None:
    """The JPEGs split over the two Kaggle part folders by image_id, and the metadata CSV."""
    from PIL import Image

    root.mkdir(parents=True, exist_ok=True)
    half = sorted(i for i, _ in pictures)[len(pictures) // 2]
    for image_id, pixels in pictures:
        folder = root / f"HAM10000_images_part_{1 if image_id < half else 2}"
        folder.mkdir(exist_ok=True)
        Image.fromarray(pixels, "RGB").save(folder / f"{image_id}.jpg", "JPEG", quality=90)
    with open(root / info.HAM10000["metadata_csv"], "w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(_HEADER)
        writer.writerows(records)
