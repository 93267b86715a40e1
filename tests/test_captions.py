"""Tests for skinlib.captions: each sentence carries the numbers of the figure it reads."""

from __future__ import annotations

import numpy as np
import pandas as pd

from skinlib import captions, info, metrics

CLASSES = info.classes("ham10000")


def test_history_names_the_restored_epoch_and_overfitting():
    hist = {"loss": [1.0, 0.8, 0.6, 0.5], "val_loss": [1.1, 0.7, 0.8, 0.9]}
    text = captions.history(hist)
    assert text.startswith("Training loss went from 1.000 to 0.500 over 4 epochs; validation loss "
                           "was lowest at epoch 2 (0.700)")
    assert "rose by 0.200" in text
    assert "had not turned up yet" in captions.history({"loss": [1.0, 0.8], "val_loss": [1.0, 0.9]})
    assert "levelled off" in captions.history({"loss": [1.0, 0.8, 0.7],
                                               "val_loss": [1.0, 0.9, 0.9001]})
    staged = captions.history({"loss": [1.0, 0.9, 0.8], "val_loss": [0.5, 0.9, 0.8]},
                              stage_boundary=1)
    assert "lowest at epoch 3 (0.800)" in staged  # the best of the last stage
    assert captions.history({"loss": [1.0]}).endswith("no validation loss was logged.")


def test_learning_curves_lists_each_model():
    text = captions.learning_curves({"a": {"val_loss": [1.0, 0.8, 0.9]},
                                     "b": {"val_loss": [0.9, 0.95]}})
    assert text.startswith("Kept epoch (of those run) and its validation loss: a 2 of 3 (0.800); "
                           "b 1 of 2 (0.900). Lowest: a.")


def test_roc_and_reliability_follow_the_result():
    rng = np.random.default_rng(0)
    y = np.r_[np.arange(len(CLASSES)), rng.integers(0, len(CLASSES), 200)]
    logits = rng.normal(size=(len(y), len(CLASSES)))
    logits[np.arange(len(y)), y] += 2
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    r = metrics.evaluate(y, p, CLASSES, n_bootstrap=0)
    auc = pd.Series({c: v["auc"] for c, v in r["per_class"].items()})
    text = captions.roc(r)
    assert text.startswith(f"Macro AUC {r['macro_auc']:.3f}, the mean of the 7 one-vs-rest AUCs. "
                           f"Best separated: {auc.idxmax()} (AUC {auc.max():.3f})")
    text = captions.reliability(y, p, "cnn")
    assert text.startswith(f"ECE of cnn: {r['ece']:.3f}")
    assert f"is right {r['accuracy']:.2f} of the time" in text
    sharp = np.where(np.eye(len(CLASSES))[y] == 1, 0.5, 0.5 / 6)
    sharp[np.arange(len(y)) % 2 == 0] = np.roll(sharp[np.arange(len(y)) % 2 == 0], 1, axis=1)
    peaked = sharp ** 8 / (sharp ** 8).sum(1, keepdims=True)  # half right, all very confident
    assert captions.reliability(y, peaked).endswith("over-confident.")


def test_gan_captions():
    losses = {"df": pd.DataFrame({"d_loss": [1.3, 0.4], "g_loss": [0.8, 2.5]}),
              "mel": pd.DataFrame({"d_loss": [1.3, 1.2], "g_loss": [0.8, 0.9]})}
    text = captions.gan_losses(losses)
    assert text.startswith("Losses at the last logged step: df D 0.40 / G 2.50; mel D 1.20 / "
                           "G 0.90")
    assert "won for df " in text
    assert "none has run away" in captions.gan_losses({"mel": losses["mel"]})
    rows = {"df": {"median_nn_distance_generated": 40.0, "median_nn_distance_val": 50.0,
                   "nn_ratio": 0.8},
            "mel": {"median_nn_distance_generated": 10.0, "median_nn_distance_val": 50.0,
                    "nn_ratio": 0.2}}
    text = captions.gan_vs_real(rows)
    assert "df 40 vs 50; mel 10 vs 50. The lowest ratio is mel's (0.20)" in text
    table = pd.DataFrame({"kid": [0.05, 0.2], "floor": [0.01, -0.01]}, index=["df", "mel"])
    assert captions.kid_vs_floor(table).startswith(
        "KID above the real-vs-real floor: df +0.04; mel +0.21. Closest to real: df; furthest: "
        "mel.")
    assert "step 10 and at step 30 of 3 checkpoints" in captions.gan_samples("df", [20, 10, 30], 8)
    text = captions.added_images({"df": 40, "mel": 0}, pd.Series({"df": 60, "mel": 300}))
    assert text.startswith("GAN images added to training: df +40 to 60 real (40 in all).")
    assert captions.added_images({"df": 0}, pd.Series({"df": 60})).startswith("No GAN image")


def test_recall_comparison_and_rare_classes():
    base = {"per_class": {"df": {"recall": 0.2}, "mel": {"recall": 0.5}, "nv": {"recall": 0.9}}}
    new = {"per_class": {"df": {"recall": 0.5}, "mel": {"recall": 0.4}, "nv": {"recall": 0.95}}}
    text = captions.recall_comparison(base, new, "02", "06")
    assert text.startswith("06 has higher recall than 02 on 2 of 3 classes; the largest gain is "
                           "df (+0.30), the largest loss mel (-0.10).")
    test = pd.DataFrame({"dx": ["nv"] * 50 + ["df"] * 4 + ["mel"] * 10 + ["vasc"] * 5})
    assert captions.rare_classes(test).startswith(
        "Rarest classes in this test split: df (4 test images), vasc (5 test images), mel (10 "
        "test images). One image there moves recall by 25% or more")
