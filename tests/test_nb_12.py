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


def _leaked(run) -> dict:
    """The measurement's leaky test images whose lesion has an image in train/val (and in
    train), counted lesion by lesion from splits.csv and the image-level split of the rest."""
    p = get_profile("smoke")
    sp = pd.read_csv(run / "splits.csv", dtype=str)
    rest = splits.make_splits(sp[sp["split"] != "test"], val_frac=p.val_frac,
                              test_frac=p.test_frac, k_folds=p.k_folds, seed=p.seed, group=False)
    sides = rest.groupby("lesion_id")["split"].agg(set)
    test = rest.loc[rest["split"] == "test", "lesion_id"]
    in_trval = sum(bool(sides[lesion] & {"train", "val"}) for lesion in test)
    in_train = sum("train" in sides[lesion] for lesion in test)
    return {"n_test": len(test), "test_images_with_lesion_in_train_or_val": in_trval,
            "share_in_train_or_val": in_trval / len(test),
            "test_images_with_lesion_in_train": in_train, "share_in_train": in_train / len(test)}


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
    p = get_profile("smoke")
    assert leak["kind"] == "facts" and leak["repeats"] == p.repeats
    assert leak["facts"]["lesions_with_several_images"] > 0
    (m,) = leak["sizes"]  # smoke: its own image size only
    assert m["image_size"] == list(p.image_size)
    assert m["seeds"] == [p.seed + r for r in range(p.repeats)]
    assert m["leaked"]["test"] == pytest.approx(_leaked(smoke_run.run_dir))
    assert m["leaked"]["test"]["share_in_train_or_val"] > 0
    n_unseen = int((pd.read_csv(smoke_run.run_dir / "splits.csv")["split"] == "test").sum())
    assert m["leaked"]["unseen"] == {"n_test": n_unseen, "share_in_train_or_val": 0,
                                     "test_images_with_lesion_in_train_or_val": 0,
                                     "share_in_train": 0, "test_images_with_lesion_in_train": 0}
    assert m["bootstrap"]["unit"] == "lesion" and m["bootstrap"]["n"] == p.n_bootstrap
    for metric, d in m["difference"].items():
        assert [s["seed"] for s in d["per_seed"]] == m["seeds"]
        for s, r in zip(d["per_seed"], m["runs"]):  # the same model on both test sets
            assert r["unseen"]["n_test"] == n_unseen
            assert s["diff"] == pytest.approx(r["test"][metric] - r["unseen"][metric])
        assert d["ci95"][0] <= d["ci95"][1]
        assert d["verdict"] in ("inflates", "deflates", "not distinguishable")
    assert len(leak["published"]["dermamnist"]) == 2
    assert (smoke_run.run_dir / "figures" / "12_leakage.png").is_file()
