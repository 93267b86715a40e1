"""RunDir: the run folder's paths and the only reader/writer of its JSON and npz files."""

import json

import numpy as np
import pytest

from skinlib.rundir import MissingArtifactError, RunDir


@pytest.fixture
def run(tmp_path):
    return RunDir(tmp_path / "run").ensure()


def test_paths_stay_inside(run):
    assert run.inside("models", "a.keras").parent == run.models
    for bad in ("../escape.json", "/etc/passwd", "models/../../x"):
        with pytest.raises(ValueError, match="leave the run folder"):
            run.inside(bad)


def test_require_names_notebook_and_command(run):
    assert run.require("metrics", "01") == run.metrics
    with pytest.raises(MissingArtifactError) as err:
        run.require("models/gan/mel/generator.keras", "03", "smoke", hint="or drop mel")
    text = str(err.value)
    assert "notebooks/03_dcgan_minority.ipynb" in text and "or drop mel" in text
    assert f"python -m skinlib run --profile smoke --only 03 --out {run.root}" in text
    with pytest.raises(ValueError, match="names no notebook"):
        run.require("x.json", "99")


def test_metrics_carry_their_kind(run):
    model = {"model": "m", "balanced_accuracy": 0.5, "ece": np.float32(0.25), "gap": np.nan}
    path = run.write_metrics("02_m", model, kind="model")
    raw = json.loads(path.read_text())
    assert raw == {"kind": "model", "model": "m", "balanced_accuracy": 0.5, "ece": 0.25,
                   "gap": None}
    assert run.read_metrics("02_m") == raw
    with pytest.raises(ValueError, match="use one of"):
        run.write_metrics("x", model, kind="models")
    with pytest.raises(ValueError, match="evaluate dict"):
        run.write_metrics("x", {"n_images": 3}, kind="model")
    with pytest.raises(ValueError, match="'models' dict"):
        run.write_metrics("x", model, kind="comparison")
    with pytest.raises(ValueError, match="says kind='facts'"):
        run.write_metrics("x", {**model, "kind": "facts"}, kind="model")
    with pytest.raises(MissingArtifactError, match="06_resnet50_transfer"):
        run.read_metrics("06_resnet50")


def test_load_metrics_flattens_comparisons_and_skips_facts(run):
    a, b = {"balanced_accuracy": 0.4}, {"model": "renamed", "balanced_accuracy": 0.6}
    run.write_metrics("01_eda", {"n_images": 3, "balanced_accuracy": 1.0}, kind="facts")
    run.write_metrics("02_cnn", {"model": "cnn", "balanced_accuracy": 0.5}, kind="model")
    run.write_metrics("05_many", {"models": {"a": a, "b": b}, "profile": "smoke"},
                      kind="comparison")
    loaded = run.load_metrics()
    assert [d["model"] for d in loaded] == ["cnn", "a", "renamed"]
    assert [d["balanced_accuracy"] for d in loaded] == [0.5, 0.4, 0.6]
    assert loaded[1]["profile"] == "smoke" and loaded[1]["source"].endswith("05_many.json")
    assert [d.get("kind") for d in loaded] == ["model", None, None]


def test_metrics_without_kind_or_json_are_refused(run, tmp_path):
    (run.metrics / "02_old.json").write_text(json.dumps({"balanced_accuracy": 0.5}))
    with pytest.raises(ValueError, match="02_old.json has kind=None.*re-run notebook 02"):
        run.load_metrics()
    (run.metrics / "02_old.json").write_text("{not json")
    with pytest.raises(ValueError, match="02_old.json is not valid JSON"):
        run.load_metrics()
    with pytest.raises(MissingArtifactError, match="no metrics folder"):
        RunDir(tmp_path / "nowhere").load_metrics()


def test_test_probs_round_trip_and_check_the_split(run):
    ids = np.array(["ISIC_1", "ISIC_2", "ISIC_3"], dtype=object)
    probs = np.array([[0.2, 0.8], [0.5, 0.5], [0.9, 0.1]], dtype=np.float32)
    run.write_test_probs("02_cnn", ids, probs)
    back = run.load_test_probs("02_cnn", "02", ids)
    assert back.dtype == np.float64 and np.array_equal(back, probs.astype(np.float64))
    with pytest.raises(ValueError, match="another test split: re-run notebook 02_baseline_cnn"):
        run.load_test_probs("02_cnn", "02", ids[::-1])
    with pytest.raises(MissingArtifactError, match="05_class_experts_kfold_bma"):
        run.load_test_probs("05_bma", "05", ids)


def test_records_and_run_times(run):
    assert run.read_record("logs/x_train.json") is None and run.run_times() == {}
    run.write_record("logs/x_train.json", {"history": {"loss": [1.0, np.float64(0.5)]}})
    assert run.read_record("logs/x_train.json") == {"history": {"loss": [1.0, 0.5]}}
    run.write_run_times({"01_eda": 1.5})
    assert run.run_times() == {"01_eda": 1.5}
    arrays = {"a": np.arange(3), "b": np.eye(2)}
    run.write_arrays("models/gan/mel/samples.npz", compressed=True, **arrays)
    back = run.read_arrays("models/gan/mel/samples.npz", "03")
    assert set(back) == {"a", "b"} and all(np.array_equal(back[k], arrays[k]) for k in arrays)


def test_work_times_are_the_longest_successful_execution(run):
    """A notebook run again loads its models and is quick: the README and the notebooks'
    headers must report the execution that trained them, not the last one."""
    run.write_run_times({"01_eda": 20.0, "02_baseline_cnn": 30.0, "07_gradcam": 25.0})
    run.add_execution("02_baseline_cnn", 900.0)
    run.add_execution("02_baseline_cnn", 1200.0, "failed")  # a failed try did not finish
    run.add_execution("02_baseline_cnn", 30.0)
    run.add_execution("07_gradcam", 25.0)
    assert [e["notebook"] for e in run.run_history()] == ["02_baseline_cnn"] * 3 + ["07_gradcam"]
    assert run.work_times() == {"01_eda": 20.0, "02_baseline_cnn": 900.0, "07_gradcam": 25.0}
    with open(run.inside("logs", "run_history.jsonl"), "a") as f:
        f.write("{not json\n")
    with pytest.raises(ValueError, match="run_history.jsonl, line 5"):
        run.run_history()
