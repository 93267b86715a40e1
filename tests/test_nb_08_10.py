"""Notebooks 08 (source shift) and 10 (image plus metadata) in the smoke profile: the values
their JSON records follow from their definitions and from the split, recomputed here."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import notebook_ok

pytestmark = pytest.mark.slow


def _run(smoke_run, name):
    if name not in smoke_run.seconds and not smoke_run.failed:
        pytest.skip(f"{name} was not part of this smoke run (SKINLIB_SMOKE_ONLY)")
    notebook_ok(smoke_run, name)


def _catalog(run) -> pd.DataFrame:
    """The run's split joined with the fake metadata (source, age) it was made from."""
    meta = pd.read_csv(run / "fake_data" / "HAM10000_metadata.csv", dtype={"age": float})
    return pd.read_csv(run / "splits.csv").merge(
        meta[["image_id", "dataset", "age"]], on="image_id", validate="one_to_one")


def test_notebook_08_source_shift(smoke_run):
    _run(smoke_run, "08_source_shift")
    run = smoke_run.run_dir
    doc = json.loads((run / "metrics" / "08_source_shift.json").read_text())
    assert doc["kind"] == "facts"  # other test sets: not rows of the main results table
    assert {"rosendahl", "vidir_modern"} <= set(doc["runs"])
    cat = _catalog(run)
    classes = doc["runs"]["rosendahl"]["heldout"]["classes"]
    for source, r in doc["runs"].items():
        held = cat["lesion_id"].isin(cat.loc[cat["dataset"] == source, "lesion_id"])
        assert r["n_heldout"] == (cat["dataset"] == source).sum() == doc["sources"][source]["images"]
        assert r["n_id_test"] == ((cat["split"] == "test") & ~held).sum()
        assert r["n_train"] == ((cat["split"] == "train") & ~held).sum()
        for key, n in (("heldout", r["n_heldout"]), ("in_distribution", r["n_id_test"])):
            assert np.sum(r[key]["confusion_matrix"]) == n
            assert r[key]["bootstrap"]["unit"] == "lesion" and r[key]["repeats"] == 1
        support = {dx: v["support"] for dx, v in r["heldout"]["per_class"].items()}
        assert support == {dx: doc["sources"][source][dx] for dx in classes}
        # the rule's priors are this model's own training mix, not the shared split's
        train = cat[(cat["split"] == "train") & ~held]
        mix = train["dx"].value_counts(normalize=True).reindex(classes, fill_value=0)
        np.testing.assert_allclose(r["heldout"]["priors"], mix.to_numpy(), atol=1e-9)
        _check_decomposition(r["decomposition"], r["heldout"])
        assert (run / "models" / f"08_without_{source}.keras").is_file()
    assert (run / "figures" / "08_per_class_recall.png").is_file()


def _check_decomposition(dec: dict, heldout: dict) -> None:
    """The parts add up, and each figure is its definition over the kept classes."""
    f = {m: v["value"] for m, v in dec["figures"].items()}
    kept = dec["classes_kept"]
    rec = dec["recall"]
    mix = dec["train_mix"]
    assert sum(mix.values()) == pytest.approx(1.0) and set(mix) == set(kept)
    assert f["accuracy_drop"] == pytest.approx(f["label_shift"] + f["acquisition_shift"])
    assert f["heldout_accuracy_reweighted"] == pytest.approx(
        sum(mix[c] * rec[c]["heldout"] for c in kept))
    assert f["in_distribution_accuracy"] == pytest.approx(
        sum(mix[c] * rec[c]["in_distribution"] for c in kept))
    assert f["balanced_accuracy_drop"] == pytest.approx(np.mean([rec[c]["drop"] for c in kept]))
    cm = np.asarray(heldout["confusion_matrix"])
    idx = [heldout["classes"].index(c) for c in kept]
    assert f["heldout_accuracy"] == pytest.approx(np.trace(cm[np.ix_(idx, idx)])
                                                  / cm[idx].sum())
    for c in kept:
        assert rec[c]["heldout"] == pytest.approx(heldout["per_class"][c]["recall"])
    assert dec["dominant"] == ("acquisition" if abs(f["acquisition_shift"])
                               >= abs(f["label_shift"]) else "label")
    assert dec["bootstrap"]["unit"] == "lesion" and dec["repeats"] == 1
    assert all(v["ci95"] for v in dec["figures"].values())


def test_notebook_10_metadata_fusion(smoke_run):
    _run(smoke_run, "10_metadata_fusion")
    run = smoke_run.run_dir
    m = json.loads((run / "metrics" / "10_metadata_fusion.json").read_text())
    assert m["kind"] == "model" and m["model"] == "10_metadata_fusion"
    assert m["decision"] == "prior_corrected" and m["epochs_max"] == 8
    assert m["images_seen"] == m["epochs_run"] * m["n_train"]  # the results table's budget
    # the recorded rule reproduces the recorded figure from the saved test probabilities
    saved = np.load(run / "models" / "10_metadata_fusion_test_probs.npz")
    cat = _catalog(run).set_index("image_id").loc[saved["image_id"]]
    pred = (saved["probs"] / np.asarray(m["priors"])).argmax(axis=1)
    cm = np.asarray(m["confusion_matrix"])
    assert np.bincount(pred, minlength=len(cm)).tolist() == cm.sum(axis=0).tolist()
    lesion = m["vs_image_only"]
    ba = lesion["balanced_accuracy"]
    assert ba["b"] == pytest.approx(m["balanced_accuracy"])
    assert ba["diff"] == pytest.approx(ba["b"] - ba["a"])
    assert lesion["bootstrap"]["unit"] == "lesion" and lesion["repeats"] == 1
    assert lesion["bootstrap"]["n_units"] == cat["lesion_id"].nunique()
    assert m["bootstrap"]["unit"] == "lesion" and m["repeats"] == 1
    for dx, rec in lesion["recall"].items():
        assert rec["b"] == pytest.approx(m["per_class"][dx]["recall"])
    assert m["metadata_shuffled"]["balanced_accuracy"]["b"] == pytest.approx(ba["b"])
    assert m["goal_met"] == bool(ba["diff"] >= m["goal"] and ba["ci95"][0] > 0)
    filled = m["metadata"]["filled"]
    assert filled["test"]["age missing"] == int(cat["age"].isna().sum())
    assert filled["test"]["rows"] == len(saved["image_id"])
    enc = json.loads((run / "models" / "10_metadata_fusion_meta_encoder.json").read_text())
    assert m["metadata"]["features"] == (
        ["age", "age_missing"] + [f"sex={v}" for v in enc["sex_levels"]]
        + [f"localization={v}" for v in enc["localization_levels"]])
    assert "unknown" in enc["sex_levels"] and "unknown" in enc["localization_levels"]
    if (run / "metrics" / "02_baseline_cnn.json").exists():
        base = json.loads((run / "metrics" / "02_baseline_cnn.json").read_text())
        assert m["baseline"] == "02_baseline_cnn"
        assert ba["a"] == pytest.approx(base["balanced_accuracy"])  # the same model and rule
    assert (run / "models" / "10_metadata_fusion.keras").is_file()
