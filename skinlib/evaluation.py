"""The one path every model takes to the test split: predict, apply its decision rule, evaluate,
write the metrics JSON; and paired comparisons of models on that split, over seeds.

The decision rule is part of the model (:mod:`skinlib.decision`): ``argmax``,
``prior_corrected`` (probabilities divided by the training priors) or ``thresholds`` fitted on
validation — the test split never chooses anything. Every interval resamples the test split's
*lesions* (:mod:`skinlib.metrics`), and a model trained with several seeds is compared seed by
seed (:func:`compare_to`, :func:`pairwise`), with one verdict from
:func:`skinlib.metrics.verdict`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from skinlib import decision as rules
from skinlib import metrics
from skinlib.card import save as save_card
from skinlib.training.fit import predict_probs, repeat_name

TRAINING_FACTS = ("epochs_run", "epochs_max", "images_seen")
_NAMES = {"balanced_accuracy": "balanced accuracy", "macro_auc": "macro AUC", "ece": "ECE",
          "accuracy": "accuracy", "macro_f1": "macro F1", "minority_recall": "minority recall",
          "subset_recall": "recall over the chosen classes",
          "mel_sensitivity_at_spec80": "melanoma sensitivity at 80% specificity"}


def trained_under(session) -> np.ndarray:
    """The class priors a model trained on the training split with the profile's balancing
    learnt under (:func:`skinlib.decision.training_priors`): what ``prior_corrected`` divides by
    unless a model says otherwise."""
    return rules.training_priors(session.frame("train")["label"], session.n_classes,
                                 session.profile.balance)


def training_facts(record: dict | None) -> dict:
    """``epochs_run``, ``epochs_max`` and ``images_seen`` of a training record (None if it
    does not say: an older run, or no record)."""
    return {k: (record or {}).get(k) for k in TRAINING_FACTS}


def evaluate_probs(session, probs_test, *, name: str, image_size, train_seconds: float,
                   n_train: int, decision: str | None = None, probs_val=None, temperature=None,
                   record: dict | None = None, repeats: int = 1, write: bool = True,
                   extra: dict | None = None, filename: str | None = None,
                   priors=None) -> dict:
    """Evaluate test probabilities already computed.

    Args:
        priors: the class priors the model was trained under
            (:func:`skinlib.decision.training_priors`; default :func:`trained_under`).
        temperature: the probabilities were tempered with it; the rule sees them untempered.
        record: the training record (its :func:`training_facts` join the dict).
        repeats: how many seeds stand behind the model's comparisons (recorded as ``repeats``).

    With ``write``, saves ``metrics/<filename or name>.json`` (kind ``model``) and the test
    probabilities (``models/<name>_test_probs.npz``, for paired comparisons in later notebooks).
    """
    test = session.frame("test")
    decision = decision or session.profile.decision
    val_y = session.frame("val")["label"].to_numpy() if probs_val is not None else None
    priors = trained_under(session) if priors is None else priors
    params = rules.rule_params(decision, train_priors=priors, y_val=val_y,
                               probs_val=probs_val, temperature=temperature)
    result = metrics.evaluate(test["label"].to_numpy(), probs_test, session.classes,
                              groups=test["lesion_id"].to_numpy(),
                              n_bootstrap=session.profile.n_bootstrap, seed=session.profile.seed,
                              **params)
    out = metrics.result_json(result, **session.meta(name, image_size=image_size,
                                                     train_seconds=train_seconds,
                                                     n_train=n_train))
    out.update(training_facts(record), repeats=int(repeats))
    out.update(extra or {})
    if write:
        session.run.write_metrics(filename or name, out, kind="model")
        session.run.write_test_probs(name, test["image_id"], probs_test)
    return out


def load_test_probs(session, name: str, notebook: str) -> np.ndarray:
    """Test probabilities a model of an earlier notebook saved, aligned with this test split."""
    return session.run.load_test_probs(name, notebook, session.frame("test")["image_id"],
                                       session.profile.name)


def load_seed_probs(session, name: str, notebook: str, repeats: int) -> list[np.ndarray]:
    """The test probabilities of the first ``repeats`` seeds of a model of an earlier notebook
    (seed r saved as :func:`~skinlib.training.fit.repeat_name`); a missing seed names the
    notebook to run."""
    return [load_test_probs(session, repeat_name(name, r), notebook) for r in range(repeats)]


def evaluate_model(session, model, *, name: str, image_size, train_seconds: float,
                   n_train: int, decision: str | None = None, record: dict | None = None,
                   repeats: int = 1, write: bool = True, extra: dict | None = None,
                   filename: str | None = None, priors=None) -> tuple[dict, np.ndarray]:
    """Predict the test split with ``model`` and evaluate it under its decision rule
    (``priors``: as :func:`evaluate_probs`).

    Returns:
        ``(metrics dict, test probabilities)``.
    """
    decision = decision or session.profile.decision
    probs_val = None
    if decision == "thresholds":
        probs_val = predict_probs(model, session.frame("val"), image_size)
    probs = predict_probs(model, session.frame("test"), image_size)
    result = evaluate_probs(session, probs, name=name, image_size=image_size,
                            train_seconds=train_seconds, n_train=n_train, decision=decision,
                            probs_val=probs_val, record=record, repeats=repeats, write=write,
                            extra=extra, filename=filename, priors=priors)
    if write:  # the model card beside models/<name>.keras: rule, temperature, input check
        save_card(session, model, result, name)
    return result, probs


def evaluate_seeds(session, runs: list[tuple], *, name: str, image_size, n_train: int,
                   decision: str | None = None, write: bool = True, extra: dict | None = None,
                   priors=None) -> tuple[dict, list[np.ndarray]]:
    """Evaluate every seed of a model (``runs``: one ``(model, record)`` per seed, as
    :func:`skinlib.training.cnn.train_cnn_seeds` returns them; ``priors``: as
    :func:`evaluate_probs`).

    The first seed's figures are the model's row (``metrics/<name>.json`` with ``write``);
    ``seeds`` lists each seed's headline figures beside them, and every seed's test
    probabilities are saved for paired comparisons.

    Returns:
        ``(metrics dict of the first seed with repeats and seeds, test probabilities per seed)``.
    """
    results, probs = [], []
    for r, (model, record) in enumerate(runs):
        res, pr = evaluate_model(session, model, name=repeat_name(name, r), image_size=image_size,
                                 train_seconds=record["train_seconds"], n_train=n_train,
                                 decision=decision, record=record, repeats=len(runs),
                                 write=False, extra=extra, priors=priors)
        results.append(res)
        probs.append(pr)
        if write:
            session.run.write_test_probs(repeat_name(name, r), session.frame("test")["image_id"],
                                         pr)
    first = {**results[0], "model": name, "seeds": seed_summary(results, runs)}
    if write:
        session.run.write_metrics(name, first, kind="model")
        save_card(session, runs[0][0], first, name)  # the row is the first seed's model
    return first, probs


def seed_summary(results: list[dict], runs: list[tuple]) -> dict:
    """Each seed's seed, epochs, training time and headline figures (lists, seed order)."""
    keys = ("balanced_accuracy", "macro_auc", "accuracy", "ece", "epochs_run", "train_seconds")
    out = {"seed": [rec.get("seed") for _, rec in runs]}
    out.update({k: [res.get(k) for res in results] for k in keys})
    return out


def compare_to(session, probs_b, others: dict, *, name_b: str, temperature=None, subset=None,
               priors: dict | None = None) -> dict[str, dict]:
    """Paired lesion-level bootstrap of model ``b`` against each of ``others`` on the test split
    (``diff`` = b - other), one :func:`metrics.compare` dict per name, under the profile's
    :func:`skinlib.decision.comparison_rule` (recorded as ``decision``); each dict names its
    models (``a``: the key in ``others``, ``b``: ``name_b``).

    Args:
        name_b: b's name.
        probs_b: b's test probabilities, or a list with one per seed; the values of ``others``
            likewise. Seed r is compared with seed r, over as many seeds as both have (the
            dict's ``repeats``).
        temperature: b's probabilities were tempered with it, or a list (one per seed); the
            rule sees them untempered.
        subset: classes whose mean recall is compared too (``subset_recall``).
        priors: model name -> the class priors it was trained under
            (:func:`skinlib.decision.training_priors`); a model not named gets
            :func:`trained_under`.
    """
    test = session.frame("test")
    d = rules.comparison_rule(session.profile.decision)
    priors = priors or {}

    def priors_of(name):
        if d != "prior_corrected":
            return None
        return np.asarray(priors[name] if name in priors else trained_under(session))
    b = metrics.seed_list(probs_b, "probs_b")
    out = {}
    for name, probs_a in others.items():
        a = metrics.seed_list(probs_a, name)
        r = min(len(a), len(b))
        t = temperature[:r] if isinstance(temperature, list | tuple) else temperature
        found = metrics.compare(test["label"].to_numpy(), a[:r], b[:r], session.classes,
                                groups=test["lesion_id"].to_numpy(), decision_a=d,
                                decision_b=d, priors=priors_of(name),
                                priors_b=priors_of(name_b), temperature_b=t,
                                n_bootstrap=session.profile.n_bootstrap,
                                seed=session.profile.seed, subset=subset,
                                names=(name, name_b))
        out[name] = {**found, "decision": d}
    return out


def pairwise(session, probs_by_name: dict, *, subset=None, priors: dict | None = None
             ) -> dict[str, dict]:
    """Every model against every earlier one in ``probs_by_name`` (name -> test probabilities,
    or one per seed): ``"<b>_vs_<a>"`` -> :func:`compare_to`'s dict with ``a`` and ``b`` named
    (``priors``: as :func:`compare_to`)."""
    names = list(probs_by_name)
    out = {}
    for j, b in enumerate(names[1:], start=1):
        found = compare_to(session, probs_by_name[b], {a: probs_by_name[a] for a in names[:j]},
                           name_b=b, subset=subset, priors=priors)
        out.update({f"{b}_vs_{a}": c for a, c in found.items()})
    return out


def verdict_line(comparison: dict, metric: str = "balanced_accuracy", a: str | None = None,
                 b: str | None = None) -> str:
    """One printed line of a comparison: difference, lesion-level CI, seed spread, verdict."""
    a, b = a or comparison.get("a", "a"), b or comparison.get("b", "b")
    m = comparison[metric]
    if m["diff"] is None or m["ci95"] is None:
        return f"{b} vs {a}, {_NAMES.get(metric, metric)}: not measurable on this test split"
    seeds = ", ".join(f"{v:+.3f}" for v in m["seed_diffs"] if v is not None)
    unit = comparison.get("bootstrap", {}).get("unit", "image")
    return (f"{b} − {a}, {_NAMES.get(metric, metric)}: {m['diff']:+.3f} (95% CI "
            f"{m['ci95'][0]:+.3f} to {m['ci95'][1]:+.3f}, {unit}-level; "
            f"{comparison['repeats']} seed(s): {seeds}) → {b} is {_phrase(m['verdict'])} {a}")


def _phrase(verdict: str) -> str:
    """The verdict as it reads before the other model's name."""
    return {"better": "better than", "worse": "worse than"}.get(verdict,
                                                                "not distinguishable from")


def comparison_table(comparisons: dict[str, dict],
                     metric_names=("balanced_accuracy", "macro_auc")) -> pd.DataFrame:
    """One row per (comparison, metric): diff, CI, seed spread and verdict."""
    rows = {}
    for label, c in comparisons.items():
        for m in metric_names:
            if m in c:
                rows[(label, m)] = {k: c[m][k] for k in ("a", "b", "diff", "ci95", "seed_sd",
                                                          "verdict")} | {"seeds": c["repeats"]}
    return pd.DataFrame(rows).T
