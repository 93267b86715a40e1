"""Numbers of the exploratory notebook (01): class balance, lesions, patients, images.

The ``reading_*`` functions return the sentence printed under each figure of notebook 01, built
from the catalog it shows, so no number in the notebook's prose is typed by hand.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from skinlib import info


def summary(catalog: pd.DataFrame) -> dict:
    """Headline facts of a catalog (JSON-ready)."""
    counts = catalog["dx"].value_counts()
    per_lesion = catalog.groupby("lesion_id").size()
    multi = per_lesion[per_lesion > 1]
    return {
        "n_images": int(len(catalog)),
        "n_lesions": int(catalog["lesion_id"].nunique()),
        "classes": {k: int(v) for k, v in counts.items()},
        "majority_class": str(counts.index[0]),
        "majority_share": float(counts.iloc[0] / counts.sum()),
        "imbalance_ratio": float(counts.iloc[0] / counts.iloc[-1]),
        "lesions_with_several_images": int(len(multi)),
        "images_in_multi_image_lesions": int(multi.sum()),
        "max_images_per_lesion": int(per_lesion.max()),
        "age_missing": int(catalog["age"].isna().sum()) if "age" in catalog else None,
    }


def class_order(catalog: pd.DataFrame) -> list[str]:
    """The classes present in a catalog, in the dataset's label order (else sorted)."""
    present = set(catalog["dx"].dropna().astype(str))
    return [c for c in catalog.attrs.get("classes", sorted(present)) if c in present]


def median_age(catalog: pd.DataFrame) -> pd.Series:
    """Median age per diagnosis, in the dataset's class order."""
    return catalog.groupby("dx")["age"].median().reindex(class_order(catalog)).rename("median age")


def _share_by_dx(catalog: pd.DataFrame, column: str, value: str) -> pd.Series:
    """Share of each dx's rows whose ``column`` equals ``value`` (class order)."""
    table = pd.crosstab(catalog["dx"], catalog[column].astype(str), normalize="index")
    share = table[value] if value in table else pd.Series(0.0, index=table.index)
    return share.reindex(class_order(catalog)).fillna(0.0)


def majority_baseline(catalog: pd.DataFrame) -> str:
    """Why the series leads with balanced accuracy: what always answering the largest class
    scores, from the catalog's own class shares."""
    counts = catalog["dx"].value_counts()
    k, top, share = len(counts), str(counts.index[0]), counts.iloc[0] / counts.sum()
    return (f"A model that always answers {top} is right {share:.0%} of the time, yet its "
            f"balanced accuracy (the mean recall over the {k} classes) is 1/{k} = {1 / k:.0%}: "
            "that is why the series reports balanced accuracy and macro AUC first.")


def reading_class_counts(catalog: pd.DataFrame) -> str:
    """The sentence under the class-count bars: largest and smallest class, the ratio, and what
    a majority-class model would score."""
    counts = catalog["dx"].value_counts()
    top, low = str(counts.index[0]), str(counts.index[-1])
    return (f"{len(catalog):,} images in {len(counts)} classes. The largest, {top} "
            f"({info.class_name(top)}), has {counts.iloc[0]:,} images "
            f"({counts.iloc[0] / counts.sum():.0%}); the smallest, {low} ({info.class_name(low)}),"
            f" has {counts.iloc[-1]:,}, {counts.iloc[0] / counts.iloc[-1]:.0f} times fewer. "
            + majority_baseline(catalog))


def reading_images_per_lesion(catalog: pd.DataFrame) -> str:
    """The sentence under the images-per-lesion histogram, with the tail spelled out."""
    per = catalog.groupby("lesion_id").size()
    dist = per.value_counts().sort_index()
    multi = per[per > 1]
    tail = [f"{n:,} with {k}" for k, n in dist.items() if k >= 4]
    return (f"{len(per):,} lesions: {int(dist.get(1, 0)):,} photographed once, {len(multi):,} "
            f"more than once ({int(multi.sum()):,} images, {multi.sum() / len(catalog):.0%} of "
            f"all). " + (f"The tail: {', '.join(tail)} images. " if tail else "")
            + "A split by image would put the other images of these lesions in training.")


def reading_age(catalog: pd.DataFrame) -> str:
    """The sentence under the age box plot: youngest and oldest class by median age."""
    med = median_age(catalog).dropna()
    missing = int(pd.to_numeric(catalog["age"], errors="coerce").isna().sum())
    if med.empty:
        return f"No image has an age ({missing} missing)."
    spread = med.max() - med.min()
    return (f"Median age runs from {med.min():.0f} years ({med.idxmin()}) to {med.max():.0f} "
            f"({med.idxmax()}); {missing:,} images have no age. "
            + (f"A gap of {spread:.0f} years means a model can pick up age-related cues (skin "
               "texture, sun damage) from the image, which matters when reading Grad-CAM maps."
               if spread >= 10 else "The classes differ little in age."))


def reading_sex(catalog: pd.DataFrame) -> str:
    """The sentence under the sex bars: the share of men overall and its range over classes."""
    known = catalog[catalog["sex"].isin(["male", "female"])]
    if known.empty:
        return "No image has a recorded sex."
    male = _share_by_dx(known, "sex", "male")
    return (f"{(known['sex'] == 'male').mean():.0%} of the images with a recorded sex are of "
            f"men; by class the share runs from {male.min():.0%} ({male.idxmin()}) to "
            f"{male.max():.0%} ({male.idxmax()}).")


def reading_localization(catalog: pd.DataFrame) -> str:
    """The sentence under the body-site heat map: the commonest site overall and per class."""
    sites = catalog["localization"].fillna("missing").astype(str)
    top = sites.value_counts()
    per = pd.crosstab(catalog["dx"], sites, normalize="index").reindex(class_order(catalog))
    each = "; ".join(f"{dx} {row.idxmax()} ({row.max():.0%})" for dx, row in per.iterrows())
    return (f"The commonest site is the {top.index[0]} ({top.iloc[0] / len(sites):.0%} of "
            f"images). Commonest site per class: {each}.")


def reading_dx_type(catalog: pd.DataFrame) -> str:
    """The sentence under the ground-truth bars: which class histopathology confirms most and
    least often."""
    histo = _share_by_dx(catalog, "dx_type", "histo")
    return (f"Histopathology confirms {histo.max():.0%} of the {histo.idxmax()} images but "
            f"{histo.min():.0%} of the {histo.idxmin()} images; the rest were confirmed by "
            "follow-up, expert consensus or confocal microscopy, so the label quality is not "
            "the same for every class.")


def image_sample(catalog: pd.DataFrame, sample: int = 500, seed: int = 0) -> dict:
    """Sizes and mean colours of a random sample of the image files.

    Returns:
        ``{"sizes": Series (width, height) -> count, "colour": DataFrame dx x R, G, B (mean
        channel value, class order), "n": files read, "bad": unreadable files}``.
    """
    from PIL import Image

    rows = catalog.sample(n=min(sample, len(catalog)), random_state=seed)
    sizes, means, bad = [], [], 0
    for path, dx in zip(rows["path"], rows["dx"].astype(str)):
        try:
            with Image.open(path) as im:
                sizes.append(im.size)
                small = im.convert("RGB")
                small.thumbnail((64, 64))
                means.append((dx, *np.asarray(small, dtype=np.float64).reshape(-1, 3).mean(0)))
        except (OSError, ValueError):
            bad += 1
    colour = pd.DataFrame(means, columns=["dx", "R", "G", "B"]).groupby("dx").mean()
    return {"sizes": pd.Series(sizes, dtype=object).value_counts(),
            "colour": colour.reindex([c for c in class_order(catalog) if c in colour.index]),
            "n": len(sizes), "bad": bad}


def reading_image_stats(stats: dict) -> str:
    """The sentence under the image-size and colour panels (``stats`` from :func:`image_sample`)."""
    if not stats["n"]:
        return f"No sampled image could be read ({stats['bad']} unreadable)."
    (w, h), n = stats["sizes"].index[0], int(stats["sizes"].iloc[0])
    red = stats["colour"]["R"] - stats["colour"]["B"]
    sizes = (f"all are {w}x{h} px" if len(stats["sizes"]) == 1 else
             f"{n / stats['n']:.0%} are {w}x{h} px ({len(stats['sizes'])} sizes in all)")
    return (f"Of {stats['n']} sampled images ({stats['bad']} unreadable), {sizes}. "
            "The reddest class on average "
            f"is {red.idxmax()} (red minus blue {red.max():.0f} of 255), the least red "
            f"{red.idxmin()} ({red.min():.0f}): colour is a cue a CNN will use.")


def reading_examples(catalog: pd.DataFrame, per_class: int) -> str:
    """The sentence under the example grid: what the rows are, and classes with fewer images."""
    counts = catalog["dx"].value_counts().reindex(class_order(catalog))
    short = [f"{dx} ({n})" for dx, n in counts.items() if n < per_class]
    return (f"One row per class ({len(counts)} rows, up to {per_class} random images each), "
            "named at the left. " + (f"Fewer images than columns: {', '.join(short)}. "
                                     if short else "")
            + "Look for what tells the classes apart, and for what should not: rulers, ink "
            "marks, hair and dark vignetting corners.")


def find_isic2019(isic_dir: str | None, data_source: str) -> Path | None:
    """The folder holding the ISIC 2019 ground-truth CSV: ``isic_dir`` if given, else the data
    folder (searched recursively) when the data source is a folder; ``None`` if absent."""
    name = info.ISIC2019["groundtruth_csv"].lower()
    for root in [isic_dir, data_source]:
        if not root or not Path(root).is_dir():
            continue
        hits = [p for p in Path(root).rglob("*.csv") if p.name.lower() == name]
        if hits:
            return hits[0].parent
        if root == isic_dir:
            raise FileNotFoundError(f"isic_dir={isic_dir}: no {info.ISIC2019['groundtruth_csv']} "
                                    "inside; point it at the folder with the ISIC 2019 CSVs")
    return None
