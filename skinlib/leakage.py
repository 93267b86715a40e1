"""Why the split is made over lesions, measured (notebook 12): one model, two test sets.

HAM10000 photographs many lesions several times. The measurement holds out a set of lesions
first — the series' own lesion-grouped test split, the *unseen-lesion* test set — and makes an
image-level random split of the remaining images into train / val / (leaky) test, so most
leaky test images have a sibling image of their lesion in training or validation. The baseline
CNN is trained once per seed (``profile.repeats`` seeds, every seed set afresh before its
model) on that training split, and the *same* model is scored on both test sets. The leakage
effect is the difference of its balanced accuracy, leaky minus unseen, with a lesion-level
bootstrap CI: lesions of each test set are drawn with replacement independently (the two sets
share no lesion), the same draws for every seed, so the CI of the mean over seeds carries the
test-set uncertainty and the seeds' spread is reported beside it.

The same measurement at 28x28 px sits beside MedMNIST v2's published DermaMNIST figures (which
use an image-level split of HAM10000).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from skinlib import decision as rules
from skinlib import evaluation, metrics, splits, training

# MedMNIST v2 (Yang et al., "MedMNIST v2 - A large-scale lightweight benchmark for 2D and 3D
# biomedical image classification", Scientific Data 10, 41, 2023), Table: DermaMNIST test ACC/AUC.
# Published figures, not measured here.
PUBLISHED_DERMAMNIST = (
    {"model": "ResNet-18 (28)", "image size": "28x28", "accuracy": 0.735, "macro AUC": 0.917},
    {"model": "ResNet-50 (28)", "image size": "28x28", "accuracy": 0.735, "macro AUC": 0.913},
)
PUBLISHED_SOURCE = "published: MedMNIST v2, Yang et al., Sci Data 2023 (image-level split)"
TEST_SETS = {"test": "image-level test (leaky)", "unseen": "unseen lesions"}
DIFF_METRICS = ("balanced_accuracy", "accuracy")  # leaky minus unseen, with the paired CI
KEEP = ("n_test", "decision", "accuracy", "accuracy_argmax", "balanced_accuracy", "macro_auc",
        "macro_f1", "ci95")


def lesion_facts(catalog: pd.DataFrame) -> dict:
    """Images, lesions and lesions with more than one image in a catalog."""
    per_lesion = catalog.groupby("lesion_id").size()
    return {"n_images": int(len(catalog)), "n_lesions": int(len(per_lesion)),
            "lesions_with_several_images": int((per_lesion > 1).sum()),
            "images_of_such_lesions": int(per_lesion[per_lesion > 1].sum())}


def leaked_test_share(split_catalog: pd.DataFrame, test: str = "test") -> dict:
    """How many images of the ``test`` split have a lesion with an image in training or
    validation (the leak that matters: the model or its early stopping saw that lesion), and
    how many in training alone."""
    rows = split_catalog[split_catalog["split"] == test]
    n = max(len(rows), 1)
    out = {"n_test": int(len(rows))}
    for key, parts in (("train_or_val", ("train", "val")), ("train", ("train",))):
        seen = set(split_catalog.loc[split_catalog["split"].isin(parts), "lesion_id"])
        leaked = int(rows["lesion_id"].isin(seen).sum())
        out[f"test_images_with_lesion_in_{key}"] = leaked
        out[f"share_in_{key}"] = leaked / n
    return out


def measurement_split(session) -> pd.DataFrame:
    """The session's catalog re-split for the measurement: its lesion-grouped ``test`` rows
    become ``unseen``; the other images get an image-level train / val / test split (same
    fractions and seed as the profile)."""
    p, cat = session.profile, session.catalog
    unseen = cat["split"] == "test"
    rest = splits.make_splits(cat[~unseen], val_frac=p.val_frac, test_frac=p.test_frac,
                              k_folds=p.k_folds, seed=p.seed, group=False)
    held = cat.loc[unseen, ["image_id", "lesion_id", "dx"]].assign(split="unseen", fold=-1)
    both = pd.concat([rest, held[splits.SPLIT_COLUMNS]], ignore_index=True)
    return splits.attach(cat.drop(columns=["split", "fold"]), both)


def _view(session, catalog: pd.DataFrame, test_set: str):
    """The session on ``catalog`` whose ``test`` split is ``test_set`` (the other set hidden)."""
    other = "unseen" if test_set == "test" else "test"
    cat = catalog[catalog["split"] != other].copy()
    cat.loc[cat["split"] == test_set, "split"] = "test"
    return dataclasses.replace(session, catalog=cat.reset_index(drop=True))


def resolve_sizes(profile, sizes=None) -> list[tuple[int, int]]:
    """The image sizes of the measurement: ``sizes`` if given, else the profile's
    ``leakage_sizes``, or its ``image_size`` when those are empty (quick: 28x28 only, to fit a
    CPU; full: its own size and 28x28)."""
    return [tuple(int(v) for v in s) for s in (sizes or profile.leakage_sizes
                                                or [profile.image_size])]


def seeds(profile, repeats: int | None = None) -> list[int]:
    """The training seeds: ``profile.seed`` and the next ``repeats - 1`` integers (default
    ``profile.repeats``)."""
    return [int(profile.seed) + r for r in range(int(repeats or profile.repeats))]


def run_seed(session, catalog: pd.DataFrame, size, seed: int, verbose: int = 0) -> dict:
    """Train (or load) the baseline CNN with one seed on the image-level training split and
    score it on both test sets.

    Returns:
        ``{"seed", "trained_as", "epochs_run", "train_seconds", "n_train", "test": figures,
        "unseen": figures}`` plus ``_arrays`` (labels, predictions and lesion ids per set, for
        the bootstrap; not written to JSON).
    """
    import keras

    keras.backend.clear_session()
    training.fit.set_seed(seed)  # every arm starts from its own seed, whatever ran before
    s = dataclasses.replace(session, catalog=catalog,
                            profile=session.profile.replace(seed=seed))
    name = f"12_leak_{size[0]}x{size[1]}_seed{seed}"
    model, record = training.cnn.train_cnn(s, name, image_size=size, verbose=verbose)
    out = {"seed": seed, "trained_as": name, "epochs_run": record.get("epochs_run"),
           "train_seconds": record["train_seconds"], "n_train": int((catalog["split"] == "train")
                                                                     .sum()), "_arrays": {}}
    for test_set in TEST_SETS:
        view = _view(s, catalog, test_set)
        result, probs = evaluation.evaluate_model(
            view, model, name=name, image_size=size, train_seconds=record["train_seconds"],
            n_train=out["n_train"], write=False)
        test = view.frame("test")
        pred = rules.apply_decision(probs, result["decision"], priors=result.get("priors"),
                                    thresholds=result.get("thresholds"))
        out[test_set] = {k: result.get(k) for k in KEEP}
        out[test_set]["accuracy_argmax"] = float((probs.argmax(1) == test["label"].to_numpy())
                                                 .mean())
        out["_arrays"][test_set] = (test["label"].to_numpy(), pred, test["lesion_id"].to_numpy())
    return out


def weighted_scores(W: np.ndarray, y, pred, n_classes: int) -> dict[str, np.ndarray]:
    """Balanced accuracy (mean recall over the classes present) and accuracy per row of image
    weights ``W`` ``(B, n)``."""
    y, pred = np.asarray(y, dtype=int), np.asarray(pred, dtype=int)
    onehot = np.eye(n_classes)[y]
    support, hits = W @ onehot, W @ (onehot * (pred == y)[:, None])
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(support > 0, hits / support, np.nan)
    return {"balanced_accuracy": np.nanmean(recall, axis=1),
            "accuracy": hits.sum(axis=1) / W.sum(axis=1)}


def paired_difference(per_seed: list[dict], n_classes: int, n_bootstrap: int, seed: int) -> dict:
    """Leaky minus unseen, per metric of :data:`DIFF_METRICS`: per seed and the mean over seeds,
    each with a lesion-level bootstrap 95% CI (:func:`metrics.bootstrap_weights`: lesions of
    each set drawn independently, the same draws for every seed), and the seeds' spread."""
    lesions = {t: per_seed[0]["_arrays"][t][2] for t in TEST_SETS}
    if any(not np.array_equal(r["_arrays"][t][2], lesions[t]) for r in per_seed for t in lesions):
        raise ValueError("the seeds were scored on different test images: every seed must use "
                         "the same measurement split (measurement_split)")
    units = [metrics.resampling_units(lesions[t], len(lesions[t]))[0] for t in TEST_SETS]
    boot = [{m: [] for m in DIFF_METRICS} for _ in per_seed]
    for Ws in metrics.bootstrap_weights(units, int(n_bootstrap), seed):
        for r, b in zip(per_seed, boot):
            lk, un = (weighted_scores(W, *r["_arrays"][t][:2], n_classes)
                      for W, t in zip(Ws, TEST_SETS))
            for m in DIFF_METRICS:
                b[m].append(lk[m] - un[m])
    boot = [{m: np.concatenate(b[m]) for m in DIFF_METRICS} for b in boot]
    point = [_point_difference(r, n_classes) for r in per_seed]
    return {m: _summary(m, per_seed, point, boot) for m in DIFF_METRICS}


def _point_difference(r: dict, n_classes: int) -> dict:
    """One seed's leaky minus unseen score per metric of :data:`DIFF_METRICS`."""
    lk, un = (weighted_scores(np.ones((1, len(r["_arrays"][t][0]))), *r["_arrays"][t][:2],
                              n_classes) for t in TEST_SETS)
    return {m: float(lk[m][0] - un[m][0]) for m in DIFF_METRICS}


def _summary(m: str, per_seed: list[dict], point: list[dict], boot: list[dict]) -> dict:
    """One metric's entry of :func:`paired_difference`, with :func:`metrics.verdict`'s rule
    (``better`` reads ``inflates``: leaky minus unseen)."""
    diffs = np.array([p[m] for p in point])
    ci = _ci(np.mean([b[m] for b in boot], axis=0))
    return {"mean": float(diffs.mean()), "ci95": ci,
            "per_seed": [{"seed": r["seed"], "diff": p[m], "ci95": _ci(b[m])}
                         for r, p, b in zip(per_seed, point, boot)],
            "seed_sd": float(diffs.std(ddof=1)) if len(diffs) > 1 else None,
            "seed_range": [float(diffs.min()), float(diffs.max())],
            "verdict": _VERDICT[metrics.verdict(ci, diffs)]}


_VERDICT = {"better": "inflates", "worse": "deflates",
            "not distinguishable": "not distinguishable"}


def _ci(values) -> list[float]:
    """Percentile 95% interval of the finite values."""
    v = np.asarray(values, dtype=float)
    lo, hi = np.percentile(v[np.isfinite(v)], [2.5, 97.5])
    return [float(lo), float(hi)]


def measure(session, size, repeats: int | None = None, verbose: int = 0) -> dict:
    """The measurement at one image size over the profile's seeds (JSON-ready)."""
    p = session.profile
    catalog = measurement_split(session)
    per_seed = [run_seed(session, catalog, size, s, verbose) for s in seeds(p, repeats)]
    diff = paired_difference(per_seed, session.n_classes, p.n_bootstrap, p.seed)
    for r in per_seed:
        r.pop("_arrays")
    return {"image_size": list(size), "seeds": [r["seed"] for r in per_seed],
            "leaked": {t: leaked_test_share(catalog, t) for t in TEST_SETS},
            "runs": per_seed, "difference": diff,
            "bootstrap": {"unit": "lesion", "n": int(p.n_bootstrap),
                          "sets": "drawn independently per test set, the same draws per seed"}}


def run(session, sizes=None, repeats: int | None = None, verbose: int = 0) -> dict:
    """The whole measurement: one :func:`measure` per size of :func:`resolve_sizes`.

    Returns:
        The JSON-ready dict that :func:`table`, :func:`differences` and ``12_leakage.json`` use.
    """
    return {"experiment": "leakage: one model per seed on an image-level split, scored on its "
                          "leaky test set and on unseen lesions",
            "facts": lesion_facts(session.catalog), "repeats": len(seeds(session.profile, repeats)),
            "sizes": [measure(session, size, repeats, verbose)
                      for size in resolve_sizes(session.profile, sizes)],
            "published": {"source": PUBLISHED_SOURCE, "dermamnist": list(PUBLISHED_DERMAMNIST)}}


def _fmt(values) -> str:
    """The mean of per-seed values, with their range when there are several."""
    v = [x for x in values if x is not None]
    if not v:
        return "n/a"
    return f"{np.mean(v):.3f}" + (f" ({min(v):.3f}-{max(v):.3f})" if len(v) > 1 else "")


def table(measurement: dict) -> pd.DataFrame:
    """Per size and test set: this run's figures (mean over seeds, range), the leaked shares,
    then MedMNIST's published figures."""
    rows = []
    for m in measurement["sizes"]:
        for t, label in TEST_SETS.items():
            figs = [r[t] for r in m["runs"]]
            leak = m["leaked"][t]
            rows.append({"model": "baseline CNN", "image size": "x".join(map(str, m["image_size"])),
                         "test set": label, "seeds": len(figs),
                         "accuracy (argmax)": _fmt([f["accuracy_argmax"] for f in figs]),
                         "balanced accuracy": _fmt([f["balanced_accuracy"] for f in figs]),
                         "macro AUC": _fmt([f["macro_auc"] for f in figs]),
                         "test images with lesion in train or val":
                             f"{leak['share_in_train_or_val']:.1%}",
                         "... in train": f"{leak['share_in_train']:.1%}", "source": "this run"})
    for pub in PUBLISHED_DERMAMNIST:
        rows.append({"model": pub["model"], "image size": pub["image size"],
                     "test set": "image-level (DermaMNIST)", "seeds": None,
                     "accuracy (argmax)": f"{pub['accuracy']:.3f}",
                     "balanced accuracy": "not reported", "macro AUC": f"{pub['macro AUC']:.3f}",
                     "test images with lesion in train or val": "not reported",
                     "... in train": "not reported", "source": PUBLISHED_SOURCE})
    return pd.DataFrame(rows).astype({"seeds": "Int64"})  # published rows have none


def differences(measurement: dict) -> pd.DataFrame:
    """Per size and metric: leaky minus unseen, mean over seeds, its lesion-level 95% CI, the
    seeds' differences and the verdict."""
    rows = []
    for m in measurement["sizes"]:
        for metric, d in m["difference"].items():
            rows.append({"image size": "x".join(map(str, m["image_size"])),
                         "metric": metric.replace("_", " "), "leaky - unseen": d["mean"],
                         "95% CI lo": d["ci95"][0], "95% CI hi": d["ci95"][1],
                         "per seed": ", ".join(f"{s['diff']:+.3f}" for s in d["per_seed"]),
                         "seed sd": d["seed_sd"], "verdict": d["verdict"]})
    return pd.DataFrame(rows)


def summary(measurement: dict) -> list[str]:
    """One sentence per image size on the balanced-accuracy difference."""
    out = []
    for m in measurement["sizes"]:
        d, leak = m["difference"]["balanced_accuracy"], m["leaked"]["test"]
        out.append(
            f"{'x'.join(map(str, m['image_size']))}: {leak['share_in_train_or_val']:.1%} of the "
            f"leaky test images have their lesion in training or validation "
            f"({leak['share_in_train']:.1%} in training); the same model's balanced accuracy is "
            f"{d['mean']:+.3f} higher there than on unseen lesions (95% CI {d['ci95'][0]:+.3f} to "
            f"{d['ci95'][1]:+.3f}, lesion-level; {len(m['seeds'])} seed(s), per seed "
            + ", ".join(f"{s['diff']:+.3f}" for s in d["per_seed"])
            + f"): the image-level split {_SAYS[d['verdict']]}.")
    return out


_SAYS = {"inflates": "inflates the figures", "deflates": "lowers the figures",
         "not distinguishable": "does not measurably change the figures"}
