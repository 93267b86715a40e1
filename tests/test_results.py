"""skinlib.results and skinlib.leakage on hand-made metrics files and tiny catalogs."""

import json

import numpy as np
import pandas as pd
import pytest

from skinlib import info, leakage, metrics, results
from skinlib.rundir import RunDir

CLASSES = info.classes("ham10000")


def _model_json(run, name, seed):
    rng = np.random.default_rng(seed)
    y = np.arange(70) % len(CLASSES)
    probs = rng.dirichlet(np.ones(len(CLASSES)), size=len(y))
    res = metrics.evaluate(y, probs, CLASSES, groups=np.arange(70) // 2, n_bootstrap=20,
                           seed=seed)
    meta = dict(model=name, profile="smoke", data="synthetic", split="test", image_size=[24, 32],
                n_train=100, n_test=70, train_seconds=1.5)
    budget = {"epochs_run": 5 + seed, "epochs_max": 22, "images_seen": 1000 * (5 + seed),
              "repeats": 2}
    run.write_metrics(name, {**metrics.result_json(res, **meta), **budget}, kind="model")
    return res


@pytest.fixture
def run(tmp_path):
    run = RunDir(tmp_path / "run").ensure()
    run.write_metrics("01_eda", {"n_images": 10}, kind="facts")
    # a facts file is no model whatever keys it holds (the leakage runs use other splits)
    run.write_metrics("08_leakage", {"balanced_accuracy": 0.9}, kind="facts")
    _model_json(run, "02_baseline_cnn", 0)
    _model_json(run, "06_resnet50_transfer", 1)
    return run


def test_collect_takes_models_by_kind_and_names_missing(run):
    found = results.collect(run)
    assert list(found) == ["02_baseline_cnn", "06_resnet50_transfer"]
    assert results.missing_notebooks(found) == ["04_gan_augmented_cnn",
                                                "05_class_experts_kfold_bma"]
    assert results.collect(run.root) == found


def test_summary_csv_equals_the_metrics_json(run):
    table = results.summary_table(results.collect(run))
    results.write_summary(table, run)
    back = pd.read_csv(run.metrics / "summary.csv").set_index("model")
    for name in ("02_baseline_cnn", "06_resnet50_transfer"):
        raw = json.loads((run.metrics / f"{name}.json").read_text())
        for col, key in results.TABLE_METRICS:
            assert back.loc[name, col] == pytest.approx(raw[key], abs=5e-5), (name, col)
            assert back.loc[name, f"{col} lo"] == pytest.approx(raw["ci95"][key][0], abs=5e-5)
            assert back.loc[name, f"{col} hi"] == pytest.approx(raw["ci95"][key][1], abs=5e-5)
        assert back.loc[name, "decision"] == raw["decision"]
        for col, key in (("epochs run", "epochs_run"), ("epochs max", "epochs_max"),
                         ("images seen", "images_seen"), ("repeats", "repeats")):
            assert back.loc[name, col] == raw[key], (name, col)
        assert back.loc[name, "CI unit"] == raw["bootstrap"]["unit"] == "lesion"


def test_summary_table_csv_and_markdown(run):
    table = results.summary_table(results.collect(run))
    assert len(table) == 2 and table["image size"].tolist() == ["24x32", "24x32"]
    for col, _ in results.TABLE_METRICS:
        ok = table[col].notna()
        assert (table.loc[ok, f"{col} lo"] <= table.loc[ok, col] + 1e-9).all()
        assert (table.loc[ok, col] <= table.loc[ok, f"{col} hi"] + 1e-9).all()
    csv_path, md_path = results.write_summary(table, run)
    back = pd.read_csv(csv_path)
    assert back["model"].tolist() == table["model"].tolist()
    md = md_path.read_text().splitlines()
    assert [c.strip() for c in md[0].split("|")[1:3]] == ["model", "notebook"] and len(md) == 4
    assert md[2].count("|") == md[0].count("|")
    shown = results.formatted(table).set_index("model")
    assert shown.loc["06_resnet50_transfer", "epochs run/max"] == "6/22"
    assert shown.loc["06_resnet50_transfer", "images seen (k)"] == "6.0"
    assert shown.loc["02_baseline_cnn", "repeats"] == "2"


def test_empty_run_is_a_clear_error(tmp_path):
    run = RunDir(tmp_path / "empty").ensure()
    assert results.collect(run) == {}
    with pytest.raises(ValueError, match="no model metrics.*02_baseline_cnn"):
        results.summary_table({})


def test_markdown_escapes_pipes():
    md = results.to_markdown(pd.DataFrame({"a": ["x|y"], "b": [None]})).splitlines()
    assert [c.strip() for c in md[2].strip().strip("|").split(" | ")] == ["x\\|y", ""]


def _catalog():
    rows = []
    for lesion in range(30):
        for k in range(1 + lesion % 3):
            rows.append({"image_id": f"ISIC_{lesion:04d}{k}", "lesion_id": f"HAM_{lesion:04d}",
                         "dx": CLASSES[lesion % len(CLASSES)]})
    return pd.DataFrame(rows)


def test_lesion_facts_and_leaked_share():
    cat = _catalog()
    facts = leakage.lesion_facts(cat)
    assert facts == {"n_images": 60, "n_lesions": 30, "lesions_with_several_images": 20,
                     "images_of_such_lesions": 50}
    cat["split"] = ["test" if i % 4 == 0 else "train" for i in range(len(cat))]
    share = leakage.leaked_test_share(cat)
    # By hand: rows come in blocks of 6 (lesions of 1, 2 and 3 images); test rows are 0, 4, ...,
    # 56 (15). A test row at block offset 0 is a one-image lesion (rows 0, 12, 24, 36, 48: no
    # leak); at any other offset its lesion has a neighbouring row, which is not a multiple of 4,
    # in train. So 15 - 5 = 10 test images leak.
    assert share == {"n_test": 15, "test_images_with_lesion_in_train": 10, "share": 10 / 15}


def test_leakage_table_marks_published_rows():
    run = {"image_size": [28, 28], "split": "image-level", "trained_as": "x",
           "accuracy_argmax": 0.7,
           "balanced_accuracy": 0.5, "macro_auc": 0.8, "ci95": {"balanced_accuracy": [0.4, 0.6]},
           "leakage": {"share": 0.4}}
    grouped = {**run, "split": "lesion-grouped", "balanced_accuracy": 0.45, "macro_auc": 0.75,
               "leakage": {"share": 0.0}}
    exp = {"facts": {}, "runs": [grouped, run]}
    t = leakage.table(exp)
    assert (t["source"] == "this run").sum() == 2
    assert t["source"].str.contains("published").sum() == 2
    gap = leakage.inflation(exp)
    assert gap["balanced_accuracy"].iloc[0] == pytest.approx(0.05)
    js = leakage.to_json(exp)
    assert [r["split"] for r in js["runs"]] == ["lesion-grouped", "image-level"]
    assert js["inflation"][0]["balanced_accuracy"] == pytest.approx(0.05)
    json.dumps(js)
