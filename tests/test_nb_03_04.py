"""Notebooks 03 and 04 in the smoke profile: the JSON they write is well-formed and in range."""

from __future__ import annotations

import json
import math

import keras
import pytest
from conftest import notebook_ok

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
    for dx, row in out["classes"].items():
        assert row["n_train"] > 0 and row["n_val"] > 0
        assert _finite(row["kid"]) and row["kid_std"] >= 0 and _finite(row["kid_floor"])
        assert row["nn_ratio"] is None or row["nn_ratio"] > 0
        folder = run / "models" / "gan" / dx
        for name in ("generator.keras", "discriminator.keras", "losses.csv", "checkpoints"):
            assert (folder / name).exists(), folder / name
        assert list((run / "logs" / "tensorboard" / f"03_gan_{dx}").glob("events.out.tfevents.*"))
    d = keras.models.load_model(run / "models" / "gan" / p.gan_classes[0] / "discriminator.keras")
    assert d.get_layer("disc_features") is not None and d.output_shape == (None, 1)
    if out["diffaugment_ablation"] is not None:
        assert _finite(out["diffaugment_ablation"]["kid_without"])


def test_notebook_04_gan_augmented(smoke_run):
    notebook_ok(smoke_run, "04_gan_augmented_cnn")
    run = smoke_run.run_dir
    out = json.loads((run / "metrics" / "04_gan_augmented.json").read_text())
    assert out["kind"] == "comparison"
    assert set(out["models"]) == {"04_cnn_weights", "04_cnn_oversample", "04_cnn_gan"}
    for name, m in out["models"].items():
        assert m["decision"] == "argmax" and set(m["per_class"]) == set(m["classes"]), name
    assert out["models"]["04_cnn_gan"]["n_synthetic"] == sum(out["n_synthetic"].values()) > 0
    assert out["models"]["04_cnn_weights"]["n_synthetic"] == 0
    for label in ("gan_minus_weights", "gan_minus_oversample"):
        comp = out["comparisons"][label]
        a, b = out["models"][comp["a"]], out["models"][comp["b"]]
        # the paired comparison scores the same argmax predictions the models' figures came from
        for metric in ("balanced_accuracy", "macro_auc"):
            assert comp[metric]["a"] == pytest.approx(a[metric]), (label, metric)
            assert comp[metric]["b"] == pytest.approx(b[metric]), (label, metric)
            assert comp[metric]["diff"] == pytest.approx(b[metric] - a[metric])
        gan = comp["gan_class_recall"]["classes"]
        assert set(gan) <= set(out["gan_classes"]) and gan
        for side, m in (("a", a), ("b", b)):
            recalls = [m["per_class"][c]["recall"] for c in gan]
            assert comp["gan_class_recall"][side] == pytest.approx(sum(recalls) / len(recalls))
    assert isinstance(out["goal_met"], bool)
    pngs = list((run / "synthetic_images").rglob("*.png"))
    assert len(pngs) == sum(out["n_synthetic"].values())
