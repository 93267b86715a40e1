"""Where an image comes from: leave-one-source-out tests and label vs acquisition shift
(notebook 08).

HAM10000 joins four image sources (``source_site``: two Vienna collections, a Queensland
practice, a MoleMax follow-up archive). A model trained on some sources and tested on another
meets two changes at once:

- *label shift*: the held-out source has another class mix (p(y) differs), which moves
  accuracy even if every class looks the same;
- *acquisition shift*: images of one class look different (camera, dermoscope, lighting, case
  mix within a class: p(x|y) differs), which moves the recall of each class.

Re-weighting the held-out images to the training class mix (importance weight
p_train(c) / p_heldout(c) per image of class c) removes the first: the re-weighted accuracy is
``sum_c p_train(c) * recall_heldout(c)``. So the accuracy drop splits exactly into
``label = reweighted - raw`` and ``acquisition = in-distribution - reweighted`` (both at the
training mix). Balanced accuracy, a plain mean of recalls, ignores the class mix: its drop is
acquisition shift alone. CIs resample lesions (:func:`skinlib.metrics.bootstrap_weights`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

from skinlib import decision as rules
from skinlib import info, metrics

SOURCE_COLUMN = "source_site"
MIN_IMAGES = 10  # a class needs this many held-out images to be scored in the decomposition
SMOKE_MIN_IMAGES = 3  # the fake dataset's sources hold a few images per class
METRICS_NAME = "08_source_shift"  # metrics/<name>.json, kind "facts"


class SourceSplit(NamedTuple):
    """The frames of one leave-one-source-out experiment."""

    source: str
    train: pd.DataFrame  # shared train split, lesions of the other sources
    val: pd.DataFrame  # shared validation split, other sources (early stopping, thresholds)
    id_test: pd.DataFrame  # shared test split, other sources: the in-distribution test
    heldout: pd.DataFrame  # every image of the held-out source, whatever its shared split
    n_dropped: int  # images of other sources whose lesion also has an image of the held-out one


class Scored(NamedTuple):
    """One test set's true labels, predicted labels (after the decision rule) and lesion ids."""

    y: np.ndarray
    pred: np.ndarray
    groups: np.ndarray


def check_sources(catalog: pd.DataFrame, sources=()) -> list[str]:
    """The catalog's image sources; ValueError if it has none or lacks one of ``sources``."""
    if SOURCE_COLUMN not in catalog.columns or \
            not catalog[SOURCE_COLUMN].fillna("").astype(str).str.strip().any():
        raise ValueError(f"the catalog has no {SOURCE_COLUMN}: the image source comes from the "
                         "Dataverse metadata (HAM10000_metadata_with_dataset.csv, column "
                         "'dataset'); put it beside the images or pass its folder as data")
    present = sorted(s for s in catalog[SOURCE_COLUMN].fillna("").unique() if str(s).strip())
    unknown = [s for s in sources if s not in present]
    if unknown:
        raise ValueError(f"source(s) {unknown} are not in the catalog's {SOURCE_COLUMN}; "
                         f"it has {present}")
    return present


def source_table(catalog: pd.DataFrame, classes) -> pd.DataFrame:
    """Images per class and source (rows sources by size, columns the classes, ``images``,
    ``lesions``); images without a source are left out."""
    check_sources(catalog)
    known = catalog[catalog[SOURCE_COLUMN].fillna("").astype(str).str.strip() != ""]
    table = pd.crosstab(known[SOURCE_COLUMN], known["dx"]).reindex(columns=list(classes),
                                                                    fill_value=0)
    table["images"] = table.sum(axis=1)
    table["lesions"] = known.groupby(SOURCE_COLUMN)["lesion_id"].nunique()
    return table.sort_values("images", ascending=False)


def source_notes(table: pd.DataFrame, classes, min_images: int = MIN_IMAGES,
                 dataset: str = "ham10000") -> list[str]:
    """One sentence per source on whether it can serve as a held-out test set: a source with
    fewer than ``min_images`` images of a malignant class cannot measure that class's recall."""
    malignant = [c for c in info.DATASETS[dataset]["malignant"] if c in classes]
    lines = []
    for source, row in table.iterrows():
        scarce = [f"{c} ({int(row[c])})" for c in classes if row[c] < min_images]
        top = max(classes, key=lambda c: row[c])
        head = (f"{source}: {int(row['images']):,} images, {row[top] / row['images']:.0%} {top}"
                + (f"; fewer than {min_images} images of {', '.join(scarce)}" if scarce else ""))
        weak = [c for c in malignant if row[c] < min_images]
        lines.append(head + (f": its recall of {', '.join(weak)} cannot be measured and its "
                             f"accuracy is mostly {top}, so it is not a useful held-out source."
                             if weak else ": usable as a held-out source."))
    return lines


def leave_one_source_out(catalog: pd.DataFrame, source: str) -> SourceSplit:
    """Train/val/in-distribution test from the other sources, and the held-out source.

    The shared lesion-grouped split decides train, val and test among the other sources, so
    the in-distribution test is part of the shared test split. A lesion with an image in the
    held-out source is kept out of every training-side frame, even if it also has images of
    another source (those few images are dropped and counted), so no lesion is on two sides.
    """
    check_sources(catalog, [source])
    if "split" not in catalog.columns:
        raise ValueError("the catalog has no 'split' column: pass session.catalog (the shared "
                         "split attached)")
    is_source = catalog[SOURCE_COLUMN] == source
    touched = catalog["lesion_id"].isin(set(catalog.loc[is_source, "lesion_id"]))
    rest = catalog[~touched]

    def part(frame):
        return frame.reset_index(drop=True)

    return SourceSplit(source, part(rest[rest["split"] == "train"]),
                       part(rest[rest["split"] == "val"]), part(rest[rest["split"] == "test"]),
                       part(catalog[is_source]), int((touched & ~is_source).sum()))


def kept_classes(id_y, heldout_y, train_mix, min_images: int = MIN_IMAGES) -> np.ndarray:
    """Classes the decomposition scores: at least ``min_images`` held-out images, some
    in-distribution test images and a nonzero training share."""
    k = len(train_mix)
    n_ho = np.bincount(np.asarray(heldout_y, dtype=np.int64), minlength=k)
    n_id = np.bincount(np.asarray(id_y, dtype=np.int64), minlength=k)
    kept = np.flatnonzero((n_ho >= min_images) & (n_id > 0) & (np.asarray(train_mix) > 0))
    if len(kept) < 2:
        raise ValueError(f"only {len(kept)} class(es) have at least {min_images} held-out images"
                         " (and in-distribution test images): lower min_images or hold out a "
                         "larger source")
    return kept


def importance_weights(heldout_y, target_mix) -> np.ndarray:
    """Per held-out image ``target_mix[c] / heldout_share[c]`` for its class c: the weighted
    held-out set has the class mix ``target_mix`` (renormalised over its nonzero classes).
    Images of classes with zero target share get weight 0."""
    y = np.asarray(heldout_y, dtype=np.int64)
    mix = np.asarray(target_mix, dtype=np.float64)
    if mix.ndim != 1 or (mix < 0).any() or mix.sum() <= 0 or y.max(initial=0) >= len(mix):
        raise ValueError(f"target_mix must be a non-negative class share vector covering the "
                         f"labels, got {np.round(mix, 4).tolist()}")
    mix = mix / mix.sum()
    share = np.bincount(y, minlength=len(mix)) / len(y)
    missing = (mix > 0) & (share == 0)
    if missing.any():
        raise ValueError(f"classes {np.flatnonzero(missing).tolist()} have a target share but no "
                         "held-out image: restrict target_mix to the held-out classes")
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(share > 0, mix / np.where(share > 0, share, 1), 0.0)
    return ratio[y]


def _mix_accuracy(cm: np.ndarray, mix: np.ndarray) -> np.ndarray:
    """Accuracy if the classes came in proportions ``mix`` (sums to 1 over the classes with
    images): ``sum_c mix_c * recall_c``, for each confusion matrix ``(B, k, k)``."""
    keep = mix > 0
    return (metrics.class_recalls(cm)[:, keep] * mix[keep]).sum(axis=1)


def _own_accuracy(cm: np.ndarray, kept) -> np.ndarray:
    """Plain accuracy over the images whose true class is in ``kept`` (the set's own mix)."""
    return np.diagonal(cm, axis1=1, axis2=2)[:, kept].sum(axis=1) / cm[:, kept, :].sum(axis=(1, 2))


def _balanced(cm: np.ndarray, kept) -> np.ndarray:
    """Mean recall over the classes ``kept`` that have images (a resample that lost every image
    of a class averages over the others, as :func:`skinlib.metrics.evaluate`; NaN if none)."""
    r = metrics.class_recalls(cm)[:, kept]
    n = np.isfinite(r).sum(axis=1)
    return np.where(n > 0, np.nansum(r, axis=1) / np.maximum(n, 1), np.nan)


def _figures(cm_id, cm_ho, mix, kept) -> dict[str, np.ndarray]:
    """Every figure of the decomposition for each row of the two confusion-matrix stacks."""
    acc_id = _mix_accuracy(cm_id, mix)
    raw, reweighted = _own_accuracy(cm_ho, kept), _mix_accuracy(cm_ho, mix)
    bal_id, bal_ho = _balanced(cm_id, kept), _balanced(cm_ho, kept)
    return {"in_distribution_accuracy": acc_id, "heldout_accuracy": raw,
            "heldout_accuracy_reweighted": reweighted, "accuracy_drop": acc_id - raw,
            "label_shift": reweighted - raw, "acquisition_shift": acc_id - reweighted,
            "in_distribution_balanced_accuracy": bal_id,
            "heldout_balanced_accuracy": bal_ho, "balanced_accuracy_drop": bal_id - bal_ho}


def _summary(point: float, draws: list) -> dict:
    """``{"value", "ci95", "excludes_0"}`` of one figure and its bootstrap draws."""
    ci = metrics.interval(np.concatenate(draws) if draws else [])
    return {"value": float(point), "ci95": ci,
            "excludes_0": bool(ci is not None and (ci[0] > 0 or ci[1] < 0))}


def decompose(in_dist: Scored, heldout: Scored, train_mix, classes, *,
              min_images: int = MIN_IMAGES, n_bootstrap: int = 1000, seed: int = 0) -> dict:
    """Split the in-distribution -> held-out accuracy drop into label and acquisition shift.

    Both sets are scored over the same classes (:func:`kept_classes`); accuracy in distribution
    and re-weighted on the held-out source use the training class mix over those classes.
    CIs: the two test sets' lesions are resampled independently (they share no lesion).

    Returns:
        ``figures`` (name -> ``{"value", "ci95", "excludes_0"}``: the accuracies, the drop,
        ``label_shift``, ``acquisition_shift`` and the balanced accuracies and their drop),
        ``recall`` (dx -> in-distribution, held-out, drop), ``classes_kept``,
        ``classes_left_out`` (dx -> held-out images), ``train_mix``, ``heldout_mix``,
        ``dominant`` (``label`` or ``acquisition``), ``bootstrap``
        (:func:`skinlib.metrics.bootstrap_record`, the lesions of both sets), ``repeats`` (1),
        ``n_bootstrap``, ``seed``.
    """
    k = len(classes)
    kept = kept_classes(in_dist.y, heldout.y, train_mix, min_images)
    mix = np.zeros(k)
    mix[kept] = np.asarray(train_mix, dtype=np.float64)[kept]
    mix /= mix.sum()

    def both(w_id, w_ho):
        return (metrics.weighted_confusion(w_id, in_dist.y, in_dist.pred, k),
                metrics.weighted_confusion(w_ho, heldout.y, heldout.pred, k))

    cms = both(np.ones((1, len(in_dist.y))), np.ones((1, len(heldout.y))))
    point = _figures(*cms, mix, kept)
    units = [metrics.resampling_units(s.groups, len(s.y), name)
             for s, name in ((in_dist, "in-distribution groups"), (heldout, "held-out groups"))]
    draws = {m: [] for m in point}
    for w_id, w_ho in metrics.bootstrap_weights([u for u, _ in units], int(n_bootstrap), seed):
        for m, v in _figures(*both(w_id, w_ho), mix, kept).items():
            draws[m].append(v)
    figures = {m: _summary(point[m][0], draws[m]) for m in point}
    unit = "lesion" if all(kind == "lesion" for _, kind in units) else "image"
    return {"figures": figures, **_recall_table(*cms, classes),
            "classes_kept": [classes[c] for c in kept],
            "classes_left_out": {classes[c]: int((heldout.y == c).sum())
                                 for c in range(k) if c not in kept},
            "train_mix": {classes[c]: float(mix[c]) for c in kept},
            "heldout_mix": {classes[c]: float((heldout.y == c).mean()) for c in range(k)},
            "dominant": ("acquisition" if abs(figures["acquisition_shift"]["value"])
                         >= abs(figures["label_shift"]["value"]) else "label"),
            "bootstrap": metrics.bootstrap_record(unit, n_bootstrap,
                                                  sum(u.max() + 1 for u, _ in units), seed),
            "repeats": 1, "n_bootstrap": int(n_bootstrap), "seed": int(seed),
            "min_images": int(min_images)}


def _recall_table(cm_id, cm_ho, classes) -> dict:
    """``recall``: dx -> in-distribution and held-out recall and their drop (None if absent)."""
    r_id, r_ho = metrics.class_recalls(cm_id)[0], metrics.class_recalls(cm_ho)[0]

    def num(v):
        return None if not np.isfinite(v) else float(v)

    return {"recall": {dx: {"in_distribution": num(a), "heldout": num(b), "drop": num(a - b)}
                       for dx, a, b in zip(classes, r_id, r_ho)}}


def verdict(source: str, dec: dict) -> str:
    """The decomposition in words, from its numbers: which shift dominates, with CIs."""
    f = dec["figures"]

    def fig(name):
        v = f[name]
        ci = v["ci95"]
        return f"{v['value']:+.3f}" + (f" (95% CI {ci[0]:+.3f} to {ci[1]:+.3f})" if ci else "")

    label, acq = f["label_shift"], f["acquisition_shift"]
    clear = [n for n, v in (("label", label), ("acquisition", acq)) if v["excludes_0"]]
    tail = (f"{dec['dominant']} shift dominates" + ("" if dec["dominant"] in clear else
                                                     ", but its CI includes 0 on this test set"))
    return (f"Held out {source} (classes {', '.join(dec['classes_kept'])}): accuracy "
            f"{f['in_distribution_accuracy']['value']:.3f} in distribution, "
            f"{f['heldout_accuracy']['value']:.3f} on {source}, "
            f"{f['heldout_accuracy_reweighted']['value']:.3f} re-weighted to the training class "
            f"mix. Of the drop {fig('accuracy_drop')}, the class mix (label shift) accounts for "
            f"{fig('label_shift')} and the look of the images (acquisition shift) for "
            f"{fig('acquisition_shift')}: {tail}. Balanced accuracy, blind to the class mix, "
            f"drops by {fig('balanced_accuracy_drop')}.")


def evaluate_source(session, model, parts: SourceSplit, *, min_images: int = MIN_IMAGES,
                    decision: str | None = None) -> dict:
    """Test a model trained without ``parts.source`` in distribution and on that source.

    The decision rule is the profile's, with the priors of this model's own training frame
    (thresholds: fitted on its validation frame). Returns ``in_distribution`` and ``heldout``
    (:func:`skinlib.metrics.evaluate` dicts), ``decomposition`` (:func:`decompose`) and the
    frame sizes; every interval resamples lesions, and every dict records ``bootstrap`` and
    ``repeats`` (1: one training seed).
    """
    from skinlib.training.fit import predict_probs

    p, k = session.profile, session.n_classes
    size, decision = tuple(p.image_size), decision or p.decision
    train_mix = rules.priors(parts.train["label"], k)
    probs_val = predict_probs(model, parts.val, size) if decision == "thresholds" else None
    params = rules.rule_params(decision, train_priors=train_mix, probs_val=probs_val,
                               y_val=parts.val["label"].to_numpy())
    out, scored = {}, {}
    for key, frame in (("in_distribution", parts.id_test), ("heldout", parts.heldout)):
        probs = predict_probs(model, frame, size)
        y, lesions = frame["label"].to_numpy(), frame["lesion_id"].to_numpy()
        out[key] = {**metrics.evaluate(y, probs, session.classes, groups=lesions,
                                       n_bootstrap=p.n_bootstrap, seed=p.seed, **params),
                    "repeats": 1}
        scored[key] = Scored(y, rules.apply_decision(probs, **params), lesions)
    out["decomposition"] = decompose(scored["in_distribution"], scored["heldout"], train_mix,
                                     session.classes, min_images=min_images,
                                     n_bootstrap=p.n_bootstrap, seed=p.seed)
    return {"source": parts.source, "n_train": len(parts.train), "n_val": len(parts.val),
            "n_id_test": len(parts.id_test), "n_heldout": len(parts.heldout),
            "n_dropped": parts.n_dropped, "decision": decision, **out}


def table(runs: dict[str, dict]) -> pd.DataFrame:
    """One row per held-out source: sizes, the figures of :func:`decompose` as ``value (lo to
    hi)`` and the dominant shift."""
    names = {"in_distribution_balanced_accuracy": "bal. acc. in dist.",
             "heldout_balanced_accuracy": "bal. acc. held out",
             "balanced_accuracy_drop": "bal. acc. drop",
             "in_distribution_accuracy": "acc. in dist.", "heldout_accuracy": "acc. held out",
             "heldout_accuracy_reweighted": "acc. held out, re-weighted",
             "label_shift": "label shift", "acquisition_shift": "acquisition shift"}
    rows = []
    for source, r in runs.items():
        f = r["decomposition"]["figures"]
        row = {"held-out source": source, "n train": r["n_train"],
               "n in dist.": r["n_id_test"], "n held out": r["n_heldout"],
               "macro AUC in dist.": _cell(r["in_distribution"]["macro_auc"]),
               "macro AUC held out": _cell(r["heldout"]["macro_auc"])}
        row.update({label: _cell(f[key]["value"], f[key]["ci95"]) for key, label in names.items()})
        row["dominant"] = r["decomposition"]["dominant"]
        rows.append(row)
    return pd.DataFrame(rows)


def _cell(value, ci=None) -> str:
    """``0.712 (0.680 to 0.741)``, ``0.712`` or ``n/a``."""
    if value is None:
        return "n/a"
    return f"{value:.3f}" + (f" ({ci[0]:.3f} to {ci[1]:.3f})" if ci else "")


def run_source(session, source: str, *, min_images: int = MIN_IMAGES, verbose: int = 0) -> dict:
    """Train the baseline CNN (notebook 02's recipe, model ``08_without_<source>``) without one
    source, or load it from this run folder, and test it (:func:`evaluate_source`)."""
    import keras

    from skinlib.training.cnn import train_cnn

    parts = leave_one_source_out(session.catalog, source)
    model, record = train_cnn(session, f"08_without_{source}", train_frame=parts.train,
                              val_frame=parts.val, verbose=verbose)
    result = evaluate_source(session, model, parts, min_images=min_images)
    result.update(model=f"08_without_{source}", epochs_run=record["epochs_run"],
                  epochs_max=session.profile.epochs, train_seconds=record["train_seconds"],
                  loaded=bool(record.get("loaded")))
    keras.backend.clear_session()
    return result


def resolve_min_images(min_images: int | None, profile) -> int:
    """``min_images`` if given, else :data:`MIN_IMAGES` (:data:`SMOKE_MIN_IMAGES` in smoke)."""
    if min_images is not None:
        return int(min_images)
    return SMOKE_MIN_IMAGES if profile.name == "smoke" else MIN_IMAGES


def to_json(session, runs: dict[str, dict], counts: pd.DataFrame, min_images: int) -> dict:
    """The experiment as written to ``metrics/08_source_shift.json``: kind ``facts``, because
    its models are tested on held-out sources and a part of the shared test split, not on the
    shared test split: they are no rows of the main results table (notebook 12 shows them in
    a section of their own)."""
    p = session.profile
    return {"notebook": METRICS_NAME, "profile": p.name, "data": session.data,
            "experiment": "leave-one-source-out: baseline CNN trained without one image source",
            "test_sets": {"in_distribution": "shared lesion-grouped test split, other sources",
                          "heldout": "every image of the held-out source"},
            "image_size": list(p.image_size), "min_images": int(min_images),
            "sources": {str(k): {c: int(v) for c, v in row.items()}
                        for k, row in counts.iterrows()},
            "runs": runs}


def load_runs(run) -> dict[str, dict] | None:
    """The runs notebook 08 wrote into a run folder (held-out source -> result), or None."""
    if not (run.metrics / f"{METRICS_NAME}.json").exists():
        return None
    return run.read_metrics(METRICS_NAME)["runs"]
