"""Notebooks 03 and 04 in the smoke profile: the JSON they write is well-formed and in range."""

from __future__ import annotations

import json
import math

import keras
import pytest
from conftest import notebook_ok

from skinlib import metrics
from skinlib.config import get_profile

pytestmark = pytest.mark.slow


def _finite(x) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)


def test_notebook_03_dcgan(smoke_run):
    notebook_ok(smoke_run, "03_dcgan_minority")
    run = smoke_run.run_dir
    out = json.loads((run / "metrics" / "03_dcgan.json").read_text())
    assert out["kind"] == "facts"
    p = get_profile("smoke")
    assert out["feature_space"] in ("inception_v3_imagenet_avgpool", "02_baseline_cnn_penultimate")
    assert set(out["classes"]) == set(p.gan_classes)
    assert out["kid_min_real"] == p.kid_min_real and out["bootstrap"]["unit"] == "lesion"
    for dx, row in out["classes"].items():
        assert row["n_train"] > 0 and row["n_val"] > 0
        assert _finite(row["kid"]) and _finite(row["floor"]) and row["kid_std"] >= 0
        assert row["ci95"][0] <= row["ci95"][1] and row["n_y"] == row["n_val"]
        assert row["excess"] == pytest.approx(row["kid"] - row["floor"])
        assert row["too_small"] == (row["n_val"] < p.kid_min_real)
        assert ("too few" in row["verdict"]) == row["too_small"]
        assert row["bootstrap"]["unit"] == "lesion"
        assert row["nn_ratio"] is None or row["nn_ratio"] > 0
        folder = run / "models" / "gan" / dx
        for name in ("generator.keras", "discriminator.keras", "losses.csv", "checkpoints"):
            assert (folder / name).exists(), folder / name
        assert list((run / "logs" / "tensorboard" / f"03_gan_{dx}").glob("events.out.tfevents.*"))
    d = keras.models.load_model(run / "models" / "gan" / p.gan_classes[0] / "discriminator.keras")
    assert d.get_layer("disc_features") is not None and d.output_shape == (None, 1)
    if out["diffaugment_ablation"] is not None:
        abl = out["diffaugment_ablation"]
        assert _finite(abl["kid_without"]) and abl["ci95"][0] <= abl["ci95"][1]
        assert abl["with_minus_without"] == pytest.approx(abl["kid_with"] - abl["kid_without"])


def test_notebook_04_gan_augmented(smoke_run):
    notebook_ok(smoke_run, "04_gan_augmented_cnn")
    run = smoke_run.run_dir
    out = json.loads((run / "metrics" / "04_gan_augmented.json").read_text())
    p = get_profile("smoke")
    assert out["kind"] == "comparison" and out["repeats"] == p.repeats
    arms = {"04_cnn_weights", "04_cnn_oversample", "04_cnn_gan"}
    assert set(out["models"]) == arms
    for name, m in out["models"].items():  # 02's recipe and budget: only balancing differs
        assert m["decision"] == p.decision and set(m["per_class"]) == set(m["classes"]), name
        assert m["epochs_max"] == p.epochs and 0 < m["epochs_run"] <= p.epochs, name
        assert m["repeats"] == p.repeats == len(m["seeds"]["seed"])
        assert m["bootstrap"]["unit"] == "lesion" and m["images_seen"] > 0
    assert out["models"]["04_cnn_gan"]["n_synthetic"] == sum(out["n_synthetic"].values()) > 0
    assert out["models"]["04_cnn_weights"]["n_synthetic"] == 0
    # each arm against each earlier one and against notebook 02's baseline
    assert set(out["comparisons"]) == {f"{b}_vs_{a}" for a, b in (
        ("02_baseline_cnn", "04_cnn_weights"), ("02_baseline_cnn", "04_cnn_oversample"),
        ("02_baseline_cnn", "04_cnn_gan"), ("04_cnn_weights", "04_cnn_oversample"),
        ("04_cnn_weights", "04_cnn_gan"), ("04_cnn_oversample", "04_cnn_gan"))}
    base02 = json.loads((run / "metrics" / "02_baseline_cnn.json").read_text())
    models = {**out["models"], "02_baseline_cnn": base02}
    for label, comp in out["comparisons"].items():
        a, b = models[comp["a"]], models[comp["b"]]
        assert comp["repeats"] == p.repeats and comp["bootstrap"]["unit"] == "lesion"
        assert comp["decision"] == p.decision
        for metric in ("balanced_accuracy", "macro_auc"):
            d = comp[metric]
            if p.repeats == 1:  # one seed: the comparison scores the models' own figures
                assert d["a"] == pytest.approx(a[metric]) and d["b"] == pytest.approx(b[metric])
            assert d["diff"] == pytest.approx(d["b"] - d["a"])
            assert d["verdict"] == metrics.verdict(d["ci95"], d["seed_diffs"])
        gan = comp["gan_class_recall"]["classes"]
        assert set(gan) <= set(out["gan_classes"]) and gan
        for side, m in (("a", a), ("b", b)):
            recalls = [m["per_class"][c]["recall"] for c in gan]
            if p.repeats == 1:
                assert comp["gan_class_recall"][side] == pytest.approx(sum(recalls) / len(recalls))
    assert isinstance(out["goal_met"], bool)
    pngs = list((run / "synthetic_images").rglob("*.png"))
    assert len(pngs) == sum(out["n_synthetic"].values())
