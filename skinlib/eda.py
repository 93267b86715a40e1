"""Numbers of the exploratory notebook (01): class balance, lesions, patients."""

from __future__ import annotations

from pathlib import Path

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


def median_age(catalog: pd.DataFrame) -> pd.Series:
    """Median age per diagnosis, in the dataset's class order."""
    order = [c for c in catalog.attrs.get("classes", sorted(catalog["dx"].unique()))
             if c in set(catalog["dx"])]
    return catalog.groupby("dx")["age"].median().reindex(order).rename("median age")


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
