"""Notebook 05 in the smoke profile: fold models, BMA weights and the comparison JSON."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import notebook_ok

NB = "05_class_experts_kfold_bma"


@pytest.mark.slow
def test_nb_05_writes_bma_metrics(smoke_run):
    notebook_ok(smoke_run, NB)
    run = smoke_run.run_dir
    if not (run / "notebooks" / f"{NB}.ipynb").exists():
        pytest.skip("notebook 05 was not part of this smoke run (SKINLIB_SMOKE_ONLY)")
    out = json.loads((run / "metrics" / "05_experts_bma.json").read_text())
    assert {"models", "bma_weights", "comparisons"} <= set(out)
    names = set(out["models"])
    assert {"05_bma", "05_bma_ts", "05_mean"} <= names
    assert any(n.startswith("05_best_fold") for n in names)
    for name, m in out["models"].items():
        assert 0.0 <= m["balanced_accuracy"] <= 1.0, name
        assert m["macro_auc"] is None or 0.0 <= m["macro_auc"] <= 1.0, name
        assert 0.0 <= m["ece"] <= 1.0, name
        assert m["n_test"] == sum(m["per_class"][c]["support"] for c in m["classes"])
    assert out["models"]["05_bma_ts"]["temperature"] > 0

    k = 2  # smoke profile's k_folds
    w = np.asarray(out["bma_weights"]["weights"])
    assert w.shape == (k,) and (w >= 0).all() and np.isclose(w.sum(), 1.0)
    saved = json.loads((run / "models" / "05_bma_weights.json").read_text())
    assert np.allclose(saved["weights"], w)
    for fold in range(k):
        assert (run / "models" / f"05_fold{fold}.keras").exists()

    base = out["comparisons"]["02_baseline_cnn"]
    for metric in ("balanced_accuracy", "macro_auc"):
        lo, hi = base[metric]["ci95"]
        assert lo <= base[metric]["diff"] <= hi or np.isclose(lo, hi)

    splits = pd.read_csv(run / "splits.csv")
    oof = pd.read_csv(run / "models" / "05_oof_probs.csv")
    assert sorted(oof["image_id"]) == sorted(splits.loc[splits["split"] == "train", "image_id"])
    probs = oof[out["models"]["05_bma"]["classes"]].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-4)
