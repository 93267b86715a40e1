"""Notebooks 06 (ResNet50 transfer) and 07 (Grad-CAM) in the smoke profile."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import notebook_ok

from skinlib.config import get_profile

pytestmark = pytest.mark.slow


def _run(smoke_run, name):
    if name not in smoke_run.seconds and not smoke_run.failed:
        pytest.skip(f"{name} was not part of this smoke run (SKINLIB_SMOKE_ONLY)")
    notebook_ok(smoke_run, name)


def test_notebook_06_writes_metrics_and_model(smoke_run):
    _run(smoke_run, "06_resnet50_transfer")
    run = smoke_run.run_dir
    # smoke has no pretrained weights: one stage from scratch, named so in every file
    assert not (run / "metrics" / "06_resnet50.json").exists()
    m = json.loads((run / "metrics" / "06_resnet50_scratch.json").read_text())
    assert m["kind"] == "model" and m["decision"] == "argmax"
    assert m["model"] == "06_resnet50_scratch" and m["image_size"] == [32, 32]
    p = get_profile("smoke")
    assert m["weights"] == "None" and len(m["stage_epochs"]) == 1
    assert 1 <= m["stage_epochs"][0] <= p.transfer_epochs_stage1 + p.transfer_epochs_stage2
    # the results table's budget columns: one stage of both stages' epochs
    assert m["epochs_run"] == m["stage_epochs"][0]
    assert m["repeats"] == p.repeats_large == len(m["seeds"]["seed"])
    assert m["epochs_max"] == p.transfer_epochs_stage1 + p.transfer_epochs_stage2
    assert m["images_seen"] == m["epochs_run"] * m["n_train"]
    assert set(m["per_class"]) == set(m["classes"]) and len(m["classes"]) == 7
    assert (run / "models" / "06_resnet50_scratch.keras").is_file()
    assert (run / "models" / "06_resnet50_scratch_test_probs.npz").is_file()
    assert (run / "logs" / "06_scratch_train.json").is_file()
    assert not (run / "logs" / "06_stage1_train.json").exists()
    assert (run / "figures" / "06_history.png").is_file()
    if (run / "metrics" / "02_baseline_cnn.json").exists():
        # the paired comparison scores each model under its own recorded rule
        base = json.loads((run / "metrics" / "02_baseline_cnn.json").read_text())
        assert m["vs_02_baseline_cnn"]["bootstrap"]["unit"] == "lesion"
        for metric in ("balanced_accuracy", "macro_auc"):
            d = m["vs_02_baseline_cnn"][metric]
            assert d["a"] == pytest.approx(base[metric]) and d["b"] == pytest.approx(m[metric])
            assert d["diff"] == pytest.approx(m[metric] - base[metric])


def test_notebook_07_explains_the_best_model(smoke_run):
    _run(smoke_run, "07_gradcam")
    run = smoke_run.run_dir
    r = json.loads((run / "metrics" / "07_gradcam.json").read_text())
    expected = "06_resnet50" if (run / "metrics" / "06_resnet50.json").exists() \
        else "02_baseline_cnn"  # a ResNet50 from scratch (smoke's) is a control, not explained
    assert r["model"] == expected
    assert r["n_images"] > 0 and min(r["feature_map"]) >= 2
    assert r["agreement"]["feature_corr"] > 0.99
    assert r["kind"] == "facts"
    rand = r["randomization"]
    assert sorted(rand["feature_map"]) >= [6, 8] and rand["n_images"] == r["n_images"]
    labels = [step["randomised"] for step in rand["steps"]]
    assert labels[0] == "probs" and len(labels) >= 3
    for step in rand["steps"]:
        assert len(step["abs_rho"]["values"]) == rand["n_images"]
        ranked = [v for v in step["abs_rho"]["values"] if v is not None]
        if ranked:  # per-image values are rounded to 1e-4
            assert step["abs_rho"]["median"] == pytest.approx(np.median(ranked), abs=1e-4)
            assert all(0 <= v <= 1 for v in ranked)
    verdicts = [step["verdict"] for step in rand["steps"]]
    if rand["verdict"] == "sensitive":  # every depth from the first null depth on is sensitive
        first = labels.index(rand["first_null_depth"])
        assert set(verdicts[first:]) == {"sensitive"} and (first == 0 or verdicts[first - 1]
                                                           != "sensitive")
    else:
        assert rand["first_null_depth"] is None and verdicts[-1] != "sensitive"
    assert rand["null"]["n_models"] >= 2
    assert 0 <= r["border"]["area_share"] <= 1
    assert any(p.name.startswith("07_cams_") for p in (run / "figures").iterdir())
    assert (run / "figures" / "07_randomisation.png").is_file()
    assert (run / "figures" / "07_randomisation_maps.png").is_file()
