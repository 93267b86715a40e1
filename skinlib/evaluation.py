"""The one path every model takes to the test split: predict, apply its decision rule, evaluate,
write the metrics JSON.

The decision rule is part of the model (DESIGN.md): ``argmax``, ``prior_corrected``
(probabilities divided by the training priors) or ``thresholds`` fitted on validation — the
test split never chooses anything.
"""

from __future__ import annotations

import numpy as np

from skinlib import metrics
from skinlib.training.fit import predict_probs


def decision_params(session, decision: str, probs_val=None, y_val=None) -> dict:
    """Keyword arguments for :func:`metrics.evaluate` that implement a decision rule."""
    if decision == "argmax":
        return {"decision": "argmax"}
    if decision == "prior_corrected":
        return {"decision": decision, "priors": np.asarray(session.priors())}
    if decision == "thresholds":
        if probs_val is None:
            raise ValueError("decision='thresholds' needs validation probabilities")
        th = metrics.fit_thresholds(y_val, probs_val, session.n_classes)
        return {"decision": decision, "thresholds": th}
    raise ValueError(f"decision={decision!r}: use argmax, prior_corrected or thresholds")


def evaluate_probs(session, probs_test, *, name: str, image_size, train_seconds: float,
                   n_train: int, decision: str | None = None, probs_val=None,
                   write: bool = True, extra: dict | None = None, filename: str | None = None
                   ) -> dict:
    """Evaluate test probabilities already computed.

    With ``write``, saves ``metrics/<filename or name>.json`` and the test probabilities
    (``models/<name>_test_probs.npz``, for paired comparisons in later notebooks).
    """
    test = session.frame("test")
    decision = decision or session.profile.decision
    val_y = session.frame("val")["label"].to_numpy() if probs_val is not None else None
    params = decision_params(session, decision, probs_val, val_y)
    result = metrics.evaluate(test["label"].to_numpy(), probs_test, session.classes,
                              n_bootstrap=session.profile.n_bootstrap, seed=session.profile.seed,
                              **params)
    if "thresholds" in params:
        result["thresholds"] = np.asarray(params["thresholds"]).round(4).tolist()
    out = metrics.result_json(result, **session.meta(name, image_size=image_size,
                                                     train_seconds=train_seconds,
                                                     n_train=n_train))
    out.update(extra or {})
    if write:
        metrics.write_metrics(session.run.metrics / f"{filename or name}.json", out)
        np.savez(session.run.models / f"{name}_test_probs.npz",
                 image_id=test["image_id"].to_numpy().astype(str), probs=np.asarray(probs_test))
    return out


def load_test_probs(session, name: str, notebook: str) -> np.ndarray:
    """Test probabilities a model of an earlier notebook saved, aligned with this test split."""
    path = session.require(f"models/{name}_test_probs.npz", notebook)
    saved = np.load(path, allow_pickle=False)
    ids = session.frame("test")["image_id"].to_numpy()
    if not np.array_equal(saved["image_id"], ids):
        raise ValueError(f"{path} was computed on another test split: re-run {notebook}")
    return saved["probs"]


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
    return result, probs
