"""Notebook 12 (results) on the smoke run: summary table files and the leakage experiment's JSON."""

import json

import pandas as pd
import pytest
from conftest import notebook_ok

from skinlib import results, splits
from skinlib.config import get_profile


def _models_in_json(metrics) -> dict[str, dict]:
    """Model name -> metrics dict, read straight from the model and comparison JSON files."""
    out = {}
    for f in sorted(metrics.glob("*.json")):
        doc = json.loads(f.read_text())
        if doc["kind"] == "model":
            out[doc["model"]] = doc
        elif doc["kind"] == "comparison":
            out.update({d.get("model", n): d for n, d in doc["models"].items()})
    return out


def _leaked(run, kind: str) -> dict:
    """Test images whose lesion also has a train/val image, counted per lesion from the split."""
    p = get_profile("smoke")
    sp = pd.read_csv(run / "splits.csv")
    if kind == "image-level":
        sp = splits.make_splits(sp, val_frac=p.val_frac, test_frac=p.test_frac,
                                k_folds=p.k_folds, seed=p.seed, group=False)
    outside_test = sp.groupby("lesion_id")["split"].agg(lambda s: bool((s != "test").any()))
    test = sp[sp["split"] == "test"]
    leaked = int(outside_test.loc[test["lesion_id"]].sum())
    return {"n_test": len(test), "test_images_with_lesion_in_train": leaked,
            "share": leaked / len(test)}


@pytest.mark.slow
def test_results_notebook_writes_summary_and_leakage(smoke_run):
    notebook_ok(smoke_run, "12_results")
    if "12_results" not in smoke_run.seconds:
        pytest.skip("notebook 12 was not part of this smoke run (SKINLIB_SMOKE_ONLY)")
    metrics = smoke_run.run_dir / "metrics"
    table = pd.read_csv(metrics / "summary.csv").set_index("model")
    expected = _models_in_json(metrics)
    assert list(table.index) == list(expected) and len(table) >= 1
    for name, m in expected.items():
        for col, key in results.TABLE_METRICS:
            if m[key] is None:
                assert pd.isna(table.loc[name, col]), (name, col)
            else:
                assert table.loc[name, col] == pytest.approx(m[key], abs=5e-5), (name, col)
        assert table.loc[name, "decision"] == m["decision"]
        # what stands behind each row: seeds, the CI's resampling unit and the training budget
        assert table.loc[name, "repeats"] == m["repeats"] >= 1, name
        assert table.loc[name, "CI unit"] == m["bootstrap"]["unit"] == "lesion", name
        for col, key in (("epochs run", "epochs_run"), ("epochs max", "epochs_max"),
                         ("images seen", "images_seen")):
            assert (pd.isna(table.loc[name, col]) if m.get(key) is None
                    else table.loc[name, col] == m[key]), (name, col)
    assert (metrics / "summary.md").read_text().startswith("| model ")
    leak = json.loads((metrics / "12_leakage.json").read_text())
    assert leak["kind"] == "facts"
    assert leak["facts"]["lesions_with_several_images"] > 0
    splits = {(tuple(r["image_size"]), r["split"]) for r in leak["runs"]}
    assert {s for _, s in splits} == {"lesion-grouped", "image-level"} and len(splits) == 2
    if "02_baseline_cnn" in smoke_run.seconds:  # notebook 02's own model is re-used
        assert leak["runs"][0]["trained_as"] == "02_baseline_cnn"
    for r in leak["runs"]:
        assert r["leakage"] == _leaked(smoke_run.run_dir, r["split"]), r["split"]
    assert [r["leakage"]["share"] > 0 for r in leak["runs"]] == [False, True]
    assert len(leak["published"]["dermamnist"]) == 2
