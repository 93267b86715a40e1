"""Why the split is made over lesions: the baseline CNN trained and tested on an image-level
random split versus the lesion-grouped split, everything else the same (notebook 12).

HAM10000 photographs many lesions several times; on an image-level split near-duplicates of a
test image sit in training, and the test figures go up without the model getting better. The
same experiment at 28x28 px sits beside MedMNIST v2's published DermaMNIST figures (which use an
image-level split of HAM10000).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from skinlib import evaluation, splits, training

# MedMNIST v2 (Yang et al., "MedMNIST v2 - A large-scale lightweight benchmark for 2D and 3D
# biomedical image classification", Scientific Data 10, 41, 2023), Table: DermaMNIST test ACC/AUC.
# Published figures, not measured here.
PUBLISHED_DERMAMNIST = (
    {"model": "ResNet-18 (28)", "image size": "28x28", "accuracy": 0.735, "macro AUC": 0.917},
    {"model": "ResNet-50 (28)", "image size": "28x28", "accuracy": 0.735, "macro AUC": 0.913},
)
PUBLISHED_SOURCE = "published: MedMNIST v2, Yang et al., Sci Data 2023 (image-level split)"
SPLIT_KINDS = ("lesion-grouped", "image-level")


def lesion_facts(catalog: pd.DataFrame) -> dict:
    """Images, lesions and lesions with more than one image in a catalog."""
    per_lesion = catalog.groupby("lesion_id").size()
    return {"n_images": int(len(catalog)), "n_lesions": int(len(per_lesion)),
            "lesions_with_several_images": int((per_lesion > 1).sum()),
            "images_of_such_lesions": int(per_lesion[per_lesion > 1].sum())}


def leaked_test_share(split_catalog: pd.DataFrame) -> dict:
    """How many test images have a lesion that also has an image in train or val."""
    test = split_catalog[split_catalog["split"] == "test"]
    seen = set(split_catalog.loc[split_catalog["split"] != "test", "lesion_id"])
    leaked = int(test["lesion_id"].isin(seen).sum())
    return {"n_test": int(len(test)), "test_images_with_lesion_in_train": leaked,
            "share": float(leaked / max(len(test), 1))}


def split_session(session, kind: str):
    """A copy of the session whose catalog carries the ``kind`` split (same seed and shares)."""
    if kind == "lesion-grouped":
        return session
    if kind != "image-level":
        raise ValueError(f"kind={kind!r}: use one of {SPLIT_KINDS}")
    p = session.profile
    sp = splits.make_splits(session.catalog, val_frac=p.val_frac, test_frac=p.test_frac,
                            k_folds=p.k_folds, seed=p.seed, group=False)
    base = session.catalog.drop(columns=["split", "fold"], errors="ignore")
    return dataclasses.replace(session, catalog=splits.attach(base, sp))


def _train_name(kind: str, size: tuple[int, int], profile_size: tuple[int, int], run,
                reuse: bool = True) -> str:
    """Model name; the lesion-grouped model at the profile's size is notebook 02's if it exists
    and ``reuse`` (the caller changed nothing that 02 trained with)."""
    if reuse and kind == "lesion-grouped" and tuple(size) == tuple(profile_size) and \
            training.fit.is_done(run, "02_baseline_cnn"):
        return "02_baseline_cnn"
    tag = "grouped" if kind == "lesion-grouped" else "image"
    return f"12_leak_{tag}_{size[0]}x{size[1]}"


def run_one(session, kind: str, image_size: tuple[int, int], verbose: int = 0,
            reuse: bool = True) -> dict:
    """Train (or load) the baseline CNN on one split at one size and test it on that split.

    Returns:
        The metrics dict (:func:`skinlib.evaluation.evaluate_model`, not written) plus ``split``
        (the kind), ``accuracy_argmax`` and ``trained_as`` (the model file's name).
    """
    s = split_session(session, kind)
    size = tuple(int(v) for v in image_size)
    name = _train_name(kind, size, session.profile.image_size, session.run, reuse)
    if name == "02_baseline_cnn":  # the same model notebook 02 trained: load, never retrain
        model, record = training.fit.load_done(session.run, name)
        record["loaded"] = True
    else:
        # Every pair trains for the profile's epochs, as notebook 02 did: with few epochs the
        # epoch that early stopping keeps varies more than the leakage effect.
        model, record = training.cnn.train_cnn(s, name, image_size=size, verbose=verbose)
    result, probs = evaluation.evaluate_model(
        s, model, name=name, image_size=size, train_seconds=record["train_seconds"],
        n_train=len(s.frame("train")), write=False)
    y = s.frame("test")["label"].to_numpy()
    result.update(split=kind, trained_as=name, loaded=bool(record.get("loaded")),
                  accuracy_argmax=float((np.asarray(probs).argmax(axis=1) == y).mean()),
                  leakage=leaked_test_share(s.catalog))
    import keras

    keras.backend.clear_session()
    return result


def resolve_sizes(profile, sizes=None) -> list[tuple[int, int]]:
    """The image sizes of the leakage pairs: ``sizes`` if given, else the profile's
    ``leakage_sizes``, or its ``image_size`` when those are empty (quick: 28x28 only, to fit a
    CPU; full: its own size and 28x28)."""
    return [tuple(int(v) for v in s) for s in (sizes or profile.leakage_sizes
                                                or [profile.image_size])]


def run(session, sizes=None, verbose: int = 0, reuse: bool = True) -> dict:
    """The whole experiment: both splits at each size of :func:`resolve_sizes`.

    With ``reuse``, notebook 02's model stands for the lesion-grouped run at the profile's size
    (pass ``False`` when the session's profile differs from 02's, e.g. other epochs).

    Returns:
        ``{"facts": lesion_facts, "runs": [metrics dict per (split, size)]}``.
    """
    runs = [run_one(session, kind, size, verbose, reuse)
            for size in resolve_sizes(session.profile, sizes) for kind in SPLIT_KINDS]
    return {"facts": lesion_facts(session.catalog), "runs": runs}


def _fmt(v, ci=None) -> str:
    """``0.712 (0.680-0.741)`` or ``0.712``."""
    if v is None:
        return "n/a"
    return f"{v:.3f}" + (f" ({ci[0]:.3f}-{ci[1]:.3f})" if ci and None not in ci[:2] else "")


def table(experiment: dict) -> pd.DataFrame:
    """One table: this run's models on both splits, then MedMNIST's published figures."""
    rows = []
    for r in experiment["runs"]:
        ci = r.get("ci95") or {}
        rows.append({"model": f"baseline CNN ({r['trained_as']})",
                     "image size": "x".join(map(str, r["image_size"])), "split": r["split"],
                     "accuracy (argmax)": _fmt(r["accuracy_argmax"]),
                     "balanced accuracy": _fmt(r["balanced_accuracy"], ci.get("balanced_accuracy")),
                     "macro AUC": _fmt(r["macro_auc"], ci.get("macro_auc")),
                     "test images leaked": f"{r['leakage']['share']:.0%}",
                     "source": "this run"})
    for pub in PUBLISHED_DERMAMNIST:
        rows.append({"model": pub["model"], "image size": pub["image size"],
                     "split": "image-level (DermaMNIST)",
                     "accuracy (argmax)": _fmt(pub["accuracy"]),
                     "balanced accuracy": "not reported", "macro AUC": _fmt(pub["macro AUC"]),
                     "test images leaked": "not reported", "source": PUBLISHED_SOURCE})
    return pd.DataFrame(rows)


def inflation(experiment: dict) -> pd.DataFrame:
    """Per image size: image-level minus lesion-grouped figure for each metric."""
    rows = []
    by = {(tuple(r["image_size"]), r["split"]): r for r in experiment["runs"]}
    for size in dict.fromkeys(tuple(r["image_size"]) for r in experiment["runs"]):
        g, i = by.get((size, "lesion-grouped")), by.get((size, "image-level"))
        if g is None or i is None:
            continue
        row = {"image size": "x".join(map(str, size))}
        for key in ("accuracy_argmax", "balanced_accuracy", "macro_auc"):
            a, b = g.get(key), i.get(key)
            row[key] = None if a is None or b is None else b - a
        rows.append(row)
    return pd.DataFrame(rows)


def to_json(experiment: dict) -> dict:
    """The experiment as written to ``metrics/12_leakage.json``, a file of kind ``facts``: its
    models are tested on other splits than the shared one, so they are no rows of the results
    table."""
    keep = ("split", "trained_as", "image_size", "n_train", "n_test", "train_seconds", "decision",
            "accuracy", "accuracy_argmax", "balanced_accuracy", "macro_auc", "macro_f1",
            "ci95", "leakage", "loaded")
    return {"experiment": "leakage: image-level vs lesion-grouped split, baseline CNN",
            "facts": experiment["facts"],
            "runs": [{k: r.get(k) for k in keep} for r in experiment["runs"]],
            "inflation": inflation(experiment).to_dict(orient="records"),
            "published": {"source": PUBLISHED_SOURCE, "dermamnist": list(PUBLISHED_DERMAMNIST)}}
