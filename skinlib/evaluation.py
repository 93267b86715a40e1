"""The one path every model takes to the test split: predict, apply its decision rule, evaluate,
write the metrics JSON; and paired comparisons of models on that split.

The decision rule is part of the model (:mod:`skinlib.decision`): ``argmax``,
``prior_corrected`` (probabilities divided by the training priors) or ``thresholds`` fitted on
validation — the test split never chooses anything.
"""

from __future__ import annotations

import numpy as np

from skinlib import decision as rules
from skinlib import metrics
from skinlib.training.fit import predict_probs


def evaluate_probs(session, probs_test, *, name: str, image_size, train_seconds: float,
                   n_train: int, decision: str | None = None, probs_val=None,
                   write: bool = True, extra: dict | None = None, filename: str | None = None
                   ) -> dict:
    """Evaluate test probabilities already computed.

    With ``write``, saves ``metrics/<filename or name>.json`` (kind ``model``) and the test
    probabilities (``models/<name>_test_probs.npz``, for paired comparisons in later notebooks).
    """
    test = session.frame("test")
    decision = decision or session.profile.decision
    val_y = session.frame("val")["label"].to_numpy() if probs_val is not None else None
    params = rules.rule_params(decision, train_priors=session.priors(), y_val=val_y,
                               probs_val=probs_val)
    result = metrics.evaluate(test["label"].to_numpy(), probs_test, session.classes,
                              n_bootstrap=session.profile.n_bootstrap, seed=session.profile.seed,
                              **params)
    out = metrics.result_json(result, **session.meta(name, image_size=image_size,
                                                     train_seconds=train_seconds,
                                                     n_train=n_train))
    out.update(extra or {})
    if write:
        session.run.write_metrics(filename or name, out, kind="model")
        session.run.write_test_probs(name, test["image_id"], probs_test)
    return out


def load_test_probs(session, name: str, notebook: str) -> np.ndarray:
    """Test probabilities a model of an earlier notebook saved, aligned with this test split."""
    return session.run.load_test_probs(name, notebook, session.frame("test")["image_id"],
                                       session.profile.name)


def evaluate_model(session, model, *, name: str, image_size, train_seconds: float,
                   n_train: int, decision: str | None = None, write: bool = True,
                   extra: dict | None = None, filename: str | None = None
                   ) -> tuple[dict, np.ndarray]:
    """Predict the test split with ``model`` and evaluate it under its decision rule.

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
                            probs_val=probs_val, write=write, extra=extra, filename=filename)
    if write:  # the model card beside models/<name>.keras: rule, temperature, input check
        from skinlib.card import save as save_card

        save_card(session, model, result, name)
    return result, probs


def compare_to(session, probs_b, others: dict[str, np.ndarray]) -> dict[str, dict]:
    """Paired bootstrap of model ``b`` against each of ``others`` on the test split
    (``diff`` = b - other), one :func:`metrics.compare` dict per name, under the profile's
    :func:`skinlib.decision.comparison_rule` (recorded as ``decision``)."""
    y = session.frame("test")["label"].to_numpy()
    d = rules.comparison_rule(session.profile.decision)
    priors = np.asarray(session.priors()) if d == "prior_corrected" else None
    out = {}
    for name, probs_a in others.items():
        out[name] = metrics.compare(y, probs_a, probs_b, session.classes, decision_a=d,
                                    decision_b=d, priors=priors,
                                    n_bootstrap=session.profile.n_bootstrap,
                                    seed=session.profile.seed)
        out[name]["decision"] = d
    return out
