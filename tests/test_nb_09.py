"""Notebook 09 runs headless in the smoke profile and records what the monitor did."""

import json

import numpy as np
import pytest
from conftest import notebook_ok

from skinlib import monitor


@pytest.mark.slow
def test_drift_monitor_notebook(smoke_run):
    notebook_ok(smoke_run, "09_drift_monitor")
    run = smoke_run.run_dir
    facts = json.loads((run / "metrics" / "09_drift_monitor.json").read_text())
    assert facts["kind"] == "facts" and facts["model"] == "02_baseline_cnn"
    ind = facts["in_distribution"]
    assert ind["n_batches"] >= 20 and len(ind["p_values"]) == ind["n_batches"]
    assert ind["false_alarm_rate"] == np.mean(np.asarray(ind["p_values"]) < facts["alpha"])
    assert ind["false_alarm_rate"] <= 0.05
    rows = facts["corruptions"]
    assert {(r["corruption"], r["strength"]) for r in rows} == {
        (k, s) for k, strengths in monitor.CORRUPTIONS.items() for s in strengths}
    strongest = [r["detection_rate"] for r in rows if r["level"] == 4]
    assert min(strongest) == 1.0
    src = facts["held_out_source"]
    assert src["source"] == "rosendahl" and src["n_images"] >= monitor.MIN_BATCH
    assert src["p_value"] == pytest.approx(min(1, len(src["tests"]) * min(src["tests"].values())))
    figs = {p.name for p in (run / "figures").glob("09_*.png")}
    assert {"09_detection.png", "09_source_batch.png"} <= figs
