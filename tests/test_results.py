"""skinlib.results and skinlib.leakage on hand-made metrics files and tiny catalogs."""

import json

import numpy as np
import pandas as pd
import pytest

from skinlib import info, leakage, metrics, results
from skinlib.rundir import RunDir
from skinlib.session import Session

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
    run.write_metrics("12_leakage", {"balanced_accuracy": 0.9}, kind="facts")
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


def _leaked_by_lesion(cat, test="test") -> dict:
    """The leaked shares counted lesion by lesion: where else each test image's lesion sits."""
    where: dict = {}
    for lesion, split in zip(cat["lesion_id"], cat["split"]):
        where.setdefault(lesion, set()).add(split)
    tests = [lesion for lesion, split in zip(cat["lesion_id"], cat["split"]) if split == test]
    in_trval = sum(bool(where[lesion] & {"train", "val"}) for lesion in tests)
    in_train = sum("train" in where[lesion] for lesion in tests)
    return {"n_test": len(tests), "test_images_with_lesion_in_train_or_val": in_trval,
            "share_in_train_or_val": in_trval / len(tests),
            "test_images_with_lesion_in_train": in_train, "share_in_train": in_train / len(tests)}


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
    assert share["test_images_with_lesion_in_train_or_val"] == 10
    assert share == _leaked_by_lesion(cat)
    # validation counts as a leak too (early stopping saw the lesion), but not as training
    cat["split"] = ["test" if i % 4 == 0 else "val" if i % 2 else "train" for i in range(len(cat))]
    share = leakage.leaked_test_share(cat)
    assert share == _leaked_by_lesion(cat)
    assert share["share_in_train"] < share["share_in_train_or_val"]


def _split_catalog(n_lesions=300, seed=0):
    """Lesions of 1-4 images, 7 classes, with a lesion-grouped split attached."""
    from skinlib import splits

    rng = np.random.default_rng(seed)
    rows = [{"image_id": f"ISIC_{lesion:05d}{k}", "lesion_id": f"HAM_{lesion:05d}",
             "dx": CLASSES[lesion % len(CLASSES)]}
            for lesion in range(n_lesions) for k in range(1 + rng.integers(0, 4))]
    cat = pd.DataFrame(rows)
    cat["label"] = cat["dx"].map(CLASSES.index)
    return splits.attach(cat, splits.make_splits(cat, k_folds=2, seed=seed))


def test_measurement_split_holds_out_the_lesion_grouped_test_set():
    from skinlib.config import get_profile

    cat = _split_catalog()
    session = Session(profile=get_profile("smoke"), run=None, catalog=cat, data="synthetic",
                      classes=CLASSES)
    m = leakage.measurement_split(session)
    assert set(m["split"]) == {"train", "val", "test", "unseen"}
    assert m.set_index("image_id").loc[cat["image_id"], "split"].eq("unseen").tolist() == \
        cat["split"].eq("test").tolist()  # the series' test split, untouched
    unseen_lesions = set(m.loc[m["split"] == "unseen", "lesion_id"])
    assert not unseen_lesions & set(m.loc[m["split"] != "unseen", "lesion_id"])
    assert leakage.leaked_test_share(m, "unseen")["test_images_with_lesion_in_train_or_val"] == 0
    leaky = leakage.leaked_test_share(m, "test")
    assert leaky == _leaked_by_lesion(m, "test") and leaky["share_in_train_or_val"] > 0.2
    view = leakage._view(session, m, "unseen")
    assert set(view.catalog["split"]) == {"train", "val", "test"}
    assert set(view.catalog.loc[view.catalog["split"] == "test", "lesion_id"]) == unseen_lesions


def test_weighted_scores_match_the_metrics():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 7, 200)
    pred = np.where(rng.random(200) < 0.6, y, rng.integers(0, 7, 200))
    s = leakage.weighted_scores(np.ones((1, 200)), y, pred, 7)
    assert s["balanced_accuracy"][0] == pytest.approx(metrics.balanced_accuracy(y, pred, 7))
    assert s["accuracy"][0] == pytest.approx((y == pred).mean())
    twice = leakage.weighted_scores(np.r_[np.ones(100), np.zeros(100)][None], y, pred, 7)
    assert twice["accuracy"][0] == pytest.approx((y[:100] == pred[:100]).mean())


def _seed_run(seed, leaky_right, unseen_right, rng):
    """A fake run_seed result: two test sets of clustered lesions, a share of right answers."""
    arrays = {}
    for t, right in (("test", leaky_right), ("unseen", unseen_right)):
        lesions = np.repeat(np.arange(120), 3)[:300]
        y = lesions % 7
        pred = np.where(rng.random(300) < right, y, (y + 1) % 7)
        arrays[t] = (y, pred, np.char.add(t, lesions.astype(str)))  # the sets share no lesion
    return {"seed": seed, "_arrays": arrays}


def test_paired_difference_and_verdict():
    rng = np.random.default_rng(2)
    runs = [_seed_run(s, 0.9, 0.5, rng) for s in (1, 2)]
    d = leakage.paired_difference(runs, 7, 400, seed=0)["balanced_accuracy"]
    assert 0.3 < d["mean"] < 0.5 and d["ci95"][0] > 0 and d["verdict"] == "inflates"
    assert d["ci95"][0] < d["mean"] < d["ci95"][1]
    assert [s["seed"] for s in d["per_seed"]] == [1, 2] and d["seed_sd"] is not None
    for s, r in zip(d["per_seed"], runs):
        point = {t: metrics.balanced_accuracy(*r["_arrays"][t][:2], 7) for t in ("test", "unseen")}
        assert s["diff"] == pytest.approx(point["test"] - point["unseen"])
    same = [_seed_run(1, 0.6, 0.6, rng)]
    same[0]["_arrays"]["unseen"] = same[0]["_arrays"]["test"]  # identical sets: no difference
    same = leakage.paired_difference(same, 7, 400, seed=0)
    assert same["balanced_accuracy"]["mean"] == 0
    assert same["balanced_accuracy"]["verdict"] == "not distinguishable"
    assert same["balanced_accuracy"]["seed_sd"] is None
    worse = [_seed_run(1, 0.3, 0.8, rng)]
    assert leakage.paired_difference(worse, 7, 200, 0)["accuracy"]["verdict"] == "deflates"
    mixed = [_seed_run(1, 0.6, 0.6, rng), _seed_run(2, 0.6, 0.6, rng)]
    mixed[1]["_arrays"]["unseen"] = mixed[1]["_arrays"]["test"]
    with pytest.raises(ValueError, match="same measurement split"):
        leakage.paired_difference(mixed, 7, 10, 0)


def test_leakage_tables_from_the_json():
    runs = [{"seed": s, "trained_as": f"12_leak_28x28_seed{s}",
             "test": {"accuracy_argmax": 0.7, "balanced_accuracy": 0.5 + s / 100, "macro_auc": 0.8},
             "unseen": {"accuracy_argmax": 0.6, "balanced_accuracy": 0.4, "macro_auc": 0.7}}
            for s in (42, 43)]
    diff = {"mean": 0.105, "ci95": [0.05, 0.16], "seed_sd": 0.007, "verdict": "inflates",
            "per_seed": [{"seed": 42, "diff": 0.1}, {"seed": 43, "diff": 0.11}]}
    leak = {"share_in_train_or_val": 0.406, "share_in_train": 0.354}
    exp = {"sizes": [{"image_size": [28, 28], "seeds": [42, 43], "runs": runs,
                      "leaked": {"test": leak, "unseen": {"share_in_train_or_val": 0.0,
                                                          "share_in_train": 0.0}},
                      "difference": {"balanced_accuracy": diff}}]}
    exp = json.loads(json.dumps(exp))  # what notebook 12 writes and the README tool reads
    t = leakage.table(exp)
    assert (t["source"] == "this run").sum() == 2
    assert t["source"].str.contains("published").sum() == 2
    assert t.loc[0, "balanced accuracy"] == "0.925 (0.920-0.930)"
    assert t.loc[0, "test images with lesion in train or val"] == "40.6%"
    assert t.loc[0, "... in train"] == "35.4%" and t.loc[1, "... in train"] == "0.0%"
    d = leakage.differences(exp)
    assert d.loc[0, "leaky - unseen"] == pytest.approx(0.105) and d.loc[0, "verdict"] == "inflates"
    (line,) = leakage.summary(exp)
    assert "40.6%" in line and "35.4% in training" in line and "+0.100, +0.110" in line
    assert line.endswith("inflates the figures.")
