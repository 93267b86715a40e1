"""The single source of truth for datasets: class codes, names, colours, licence, citations.

Nothing else in skinlib or the notebooks spells class codes out; they read them from here.
"""

from __future__ import annotations

LICENSE = "CC BY-NC 4.0 (non-commercial research and teaching only)"

HAM10000 = {
    "name": "HAM10000",
    "kaggle": "kmader/skin-cancer-mnist-ham10000",
    "metadata_csv": "HAM10000_metadata.csv",
    # DermaMNIST's order (alphabetical), so label i means the same thing in both.
    "classes": ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"],
    "names": {
        "akiec": "Actinic keratosis / intraepithelial carcinoma",
        "bcc": "Basal cell carcinoma",
        "bkl": "Benign keratosis-like lesion",
        "df": "Dermatofibroma",
        "mel": "Melanoma",
        "nv": "Melanocytic nevus",
        "vasc": "Vascular lesion",
    },
    "malignant": ["akiec", "bcc", "mel"],
    # Image source of each image (the Dataverse metadata's `dataset` column) and its count.
    "sources": {"vidir_molemax": 3954, "vidir_modern": 3363, "rosendahl": 2259,
                "vienna_dias": 439},
    "license": LICENSE,
    "citation": (
        "Tschandl P., Rosendahl C., Kittler H. The HAM10000 dataset, a large collection of "
        "multi-source dermatoscopic images of common pigmented skin lesions. "
        "Sci. Data 5, 180161 (2018). doi:10.1038/sdata.2018.161"
    ),
}

ISIC2019 = {
    "name": "ISIC 2019",
    "kaggle": "andrewmvd/isic-2019",
    "groundtruth_csv": "ISIC_2019_Training_GroundTruth.csv",
    "metadata_csv": "ISIC_2019_Training_Metadata.csv",
    # Column in the one-hot ground truth -> dx code used in the catalog.
    "onehot": {"MEL": "mel", "NV": "nv", "BCC": "bcc", "AK": "ak", "BKL": "bkl",
               "DF": "df", "VASC": "vasc", "SCC": "scc", "UNK": "unk"},
    "classes": ["ak", "bcc", "bkl", "df", "mel", "nv", "scc", "vasc"],
    "names": {
        "ak": "Actinic keratosis",
        "bcc": "Basal cell carcinoma",
        "bkl": "Benign keratosis-like lesion",
        "df": "Dermatofibroma",
        "mel": "Melanoma",
        "nv": "Melanocytic nevus",
        "scc": "Squamous cell carcinoma",
        "vasc": "Vascular lesion",
    },
    "malignant": ["ak", "bcc", "mel", "scc"],
    "license": LICENSE,
    "citation": (
        "Tschandl et al. 2018 (HAM10000); Codella N. et al. Skin lesion analysis toward melanoma "
        "detection: ISIC 2017 challenge (arXiv:1710.05006); Combalia M. et al. BCN20000: "
        "dermoscopic lesions in the wild (arXiv:1908.02288)."
    ),
}

DATASETS = {"ham10000": HAM10000, "isic2019": ISIC2019}

# One colour per dx code, shared by every figure. Each reads on white as a line or text (WCAG
# contrast >= 3:1; Okabe-Ito's yellow #F0E442 had 1.3:1) and the seven HAM10000 colours stay
# apart for deuteranopes and protanopes too (tuned from Okabe-Ito hues, checked by simulation).
COLORS = {
    "akiec": "#663600", "ak": "#663600", "bcc": "#0893E8", "bkl": "#6B9660",
    "df": "#37463E", "mel": "#DD6E0A", "nv": "#1E3F86", "vasc": "#BE6A9C",
    "scc": "#C0102A", "unk": "#6E6E6E",
}


def classes(dataset: str = "ham10000") -> list[str]:
    """Class codes of a dataset, in label order."""
    try:
        return list(DATASETS[dataset]["classes"])
    except KeyError:
        raise ValueError(f"unknown dataset {dataset!r}: use one of {sorted(DATASETS)}") from None


def class_names(dataset: str = "ham10000") -> dict[str, str]:
    """Readable name of each class code of a dataset."""
    return dict(DATASETS[dataset]["names"])


def class_name(dx: str) -> str:
    """Readable name of a class code of any dataset (``"mel"`` -> ``"Melanoma"``); the code
    itself when no dataset names it."""
    for meta in DATASETS.values():
        if dx in meta["names"]:
            return meta["names"][dx]
    return dx


def class_legend(dataset: str = "ham10000") -> str:
    """One line per class of a dataset: code, name, and "malignant" where it is."""
    meta = DATASETS[dataset] if dataset in DATASETS else None
    if meta is None:
        raise ValueError(f"unknown dataset {dataset!r}: use one of {sorted(DATASETS)}")
    return "\n".join(f"{c:<6} {meta['names'][c]}" + ("  (malignant)" if c in meta["malignant"]
                                                     else "") for c in meta["classes"])
