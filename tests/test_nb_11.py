"""Notebook 11 (SHAP next to Grad-CAM) in the smoke profile."""

from __future__ import annotations

import json

import pytest
from conftest import notebook_ok

from skinlib import explain_agnostic

pytestmark = pytest.mark.slow


def test_notebook_11_compares_shap_with_gradcam(smoke_run):
    if "11_lime_shap" not in smoke_run.seconds and not smoke_run.failed:
        pytest.skip("11_lime_shap was not part of this smoke run (SKINLIB_SMOKE_ONLY)")
    notebook_ok(smoke_run, "11_lime_shap")
    run = smoke_run.run_dir
    r = json.loads((run / "metrics" / "11_lime_shap.json").read_text())
    expected = "06_resnet50" if (run / "metrics" / "06_resnet50.json").exists() \
        else "02_baseline_cnn"  # 07's model: 06's when fine-tuned from pretrained weights
    assert r["kind"] == "facts" and r["model"] == expected and r["profile"] == "smoke"
    assert r["max_evals"] == 64 and r["masker"] == "inpaint_telea"
    assert 0 < r["n_images"] <= 6 and len(r["correct"]) == r["n_images"]
    assert r["n_correct"] == sum(r["correct"]) and len(r["explained_class"]) == r["n_images"]
    assert r["additivity_error"] < 1e-4  # SHAP's efficiency: values add up to the logit gap
    a = r["agreement"]
    assert a["grid"] == list(explain_agnostic.common_grid(r["feature_map"], r["image_size"]))
    assert a["chance_iou"] == pytest.approx(a["top_frac"] / (2 - a["top_frac"]), abs=1e-4)
    for key in ("spearman", "iou"):
        m = a[key]
        vals = [v for v in m["per_image"] if v is not None]
        assert len(m["per_image"]) == r["n_images"] and m["n_images"] == len(vals)
        assert m["median"] == pytest.approx(sorted(vals)[len(vals) // 2] if len(vals) % 2
                                            else sum(sorted(vals)[len(vals) // 2 - 1:
                                                                  len(vals) // 2 + 1]) / 2,
                                            abs=1e-4)
        assert m["n_null_pairs"] <= r["n_images"] * (r["n_images"] - 1)
        assert m["n_below_null_median"] == sum(v < m["null_other_median"] for v in vals)
        assert 0 < m["p_value"] <= 1
    assert all(-1 <= v <= 1 for v in a["spearman"]["per_image"] if v is not None)
    assert (run / "figures" / "11_agreement.png").is_file()
    assert any(p.name.startswith("11_shap_gradcam_") for p in (run / "figures").iterdir())
