"""Notebook 08 on the smoke run: summary table files and the leakage experiment's JSON."""

import json

import pandas as pd
import pytest
from conftest import notebook_ok

from skinlib import results


@pytest.mark.slow
def test_results_notebook_writes_summary_and_leakage(smoke_run):
    notebook_ok(smoke_run, "08_results")
    if "08_results" not in smoke_run.seconds:
        pytest.skip("notebook 08 was not part of this smoke run (SKINLIB_SMOKE_ONLY)")
    metrics = smoke_run.run_dir / "metrics"
    table = pd.read_csv(metrics / "summary.csv")
    found = results.collect(smoke_run.run_dir)
    assert table["model"].tolist() == list(found) and len(table) >= 1
    for col, _ in results.TABLE_METRICS:
        vals = table[col].dropna()
        assert ((vals >= 0) & (vals <= 1)).all(), col
    assert (metrics / "summary.md").read_text().startswith("| model ")
    leak = json.loads((metrics / "08_leakage.json").read_text())
    assert leak["facts"]["lesions_with_several_images"] > 0
    splits = {(tuple(r["image_size"]), r["split"]) for r in leak["runs"]}
    assert {s for _, s in splits} == {"lesion-grouped", "image-level"} and len(splits) == 2
    if "02_baseline_cnn" in smoke_run.seconds:  # notebook 02's own model is re-used
        assert leak["runs"][0]["trained_as"] == "02_baseline_cnn"
    for r in leak["runs"]:
        assert 0 <= r["balanced_accuracy"] <= 1 and 0 <= r["macro_auc"] <= 1
        share = r["leakage"]["share"]
        assert share == 0 if r["split"] == "lesion-grouped" else share > 0
    assert len(leak["published"]["dermamnist"]) == 2
