"""Notebook 05 in the smoke profile: fold models, BMA weights and the comparison JSON."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import notebook_ok

NB = "05_class_experts_kfold_bma"


def _test_probs(run, name):
    with np.load(run / "models" / f"{name}_test_probs.npz") as saved:
        return saved["image_id"], saved["probs"]


@pytest.mark.slow
def test_nb_05_writes_bma_metrics(smoke_run):
    notebook_ok(smoke_run, NB)
    run = smoke_run.run_dir
    if not (run / "notebooks" / f"{NB}.ipynb").exists():
        pytest.skip("notebook 05 was not part of this smoke run (SKINLIB_SMOKE_ONLY)")
    out = json.loads((run / "metrics" / "05_experts_bma.json").read_text())
    assert out["kind"] == "comparison"
    assert {"models", "bma_weights", "comparisons"} <= set(out)
    names = set(out["models"])
    assert {"05_bma", "05_bma_ts", "05_mean"} <= names
    assert any(n.startswith("05_best_fold") for n in names)
    for name, m in out["models"].items():
        assert m["n_test"] == sum(m["per_class"][c]["support"] for c in m["classes"]), name
    assert out["models"]["05_bma_ts"]["temperature"] == out["temperature"] > 0
    # temperature scaling never moves a decision: the same confusion matrix as the BMA's
    assert out["models"]["05_bma_ts"]["confusion_matrix"] == \
        out["models"]["05_bma"]["confusion_matrix"]
    for name, m in out["models"].items():
        assert m["bootstrap"]["unit"] == "lesion" and m["repeats"] == out["repeats"], name
        assert 0 < m["epochs_run"] <= m["epochs_max"] and m["images_seen"] > 0, name

    k = 2  # smoke profile's k_folds
    bma = out["bma_weights"]
    w = np.asarray(bma["weights"])
    # the weights are the softmax of tau * log-likelihood (uniform prior), recomputed here
    logits = bma["tau"] * np.asarray(bma["log_likelihood"])
    expected = np.exp(logits - logits.max())
    np.testing.assert_allclose(w, expected / expected.sum(), rtol=1e-9)
    assert w.shape == (k,) and bma["tau"] == pytest.approx(1 / bma["n_images"])
    saved = json.loads((run / "models" / "05_bma_weights.json").read_text())
    assert saved["weights"] == bma["weights"]
    for fold in range(k):
        assert (run / "models" / f"05_fold{fold}.keras").exists()

    # BMA = the weighted sum of the fold models' test probabilities; 05_mean = their plain mean
    # (to float32 rounding: the fold models' softmax rows sum to 1 within 1e-6)
    ids, bma_probs = _test_probs(run, "05_bma")
    folds = [_test_probs(run, f"05_fold{i}") for i in range(k)]
    assert all(np.array_equal(ids, f_ids) for f_ids, _ in folds)
    stack = np.stack([p for _, p in folds])
    np.testing.assert_allclose(bma_probs, np.einsum("k,knc->nc", w, stack), atol=1e-6)
    np.testing.assert_allclose(_test_probs(run, "05_mean")[1], stack.mean(axis=0), atol=1e-6)

    # the comparison with the baseline scores the same figures the two JSONs report
    base02 = json.loads((run / "metrics" / "02_baseline_cnn.json").read_text())
    comp = out["comparisons"]["02_baseline_cnn"]
    assert comp["decision"] == base02["decision"] == out["models"]["05_bma"]["decision"]
    assert comp["repeats"] == min(out["repeats"], base02["repeats"]) == 1  # smoke: one seed
    assert comp["bootstrap"]["unit"] == "lesion" and comp["balanced_accuracy"]["verdict"] in (
        "better", "worse", "not distinguishable")
    ts = out["comparisons"]["05_bma_ts_vs_02_baseline_cnn"]["balanced_accuracy"]
    assert ts["diff"] == comp["balanced_accuracy"]["diff"]  # same decisions, same difference
    for metric in ("balanced_accuracy", "macro_auc"):
        assert comp[metric]["a"] == pytest.approx(base02[metric])
        assert comp[metric]["b"] == pytest.approx(out["models"]["05_bma"][metric])
        assert comp[metric]["diff"] == pytest.approx(comp[metric]["b"] - comp[metric]["a"])

    splits = pd.read_csv(run / "splits.csv")
    oof = pd.read_csv(run / "models" / "05_oof_probs.csv")
    assert sorted(oof["image_id"]) == sorted(splits.loc[splits["split"] == "train", "image_id"])
    probs = oof[out["models"]["05_bma"]["classes"]].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-4)
