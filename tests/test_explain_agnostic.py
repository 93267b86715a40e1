"""SHAP attributions, their aggregation to a grid, and agreement with Grad-CAM against a null."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from skinlib import explain_agnostic as ea


def _random_maps(n, shape, seed):
    return np.random.default_rng(seed).normal(size=(n, *shape))


# --- aggregation onto a grid ----------------------------------------------------------------

def test_to_grid_averages_each_block():
    m = np.arange(24, dtype=float).reshape(1, 4, 6)
    g = ea.to_grid(m, (2, 3))
    want = m.reshape(1, 2, 2, 3, 2).mean(axis=(2, 4))
    np.testing.assert_allclose(g, want, rtol=1e-6)


def test_to_grid_keeps_the_mean_with_fractional_cells():
    m = _random_maps(3, (24, 32), seed=1)
    g = ea.to_grid(m, (9, 12))
    assert g.shape == (3, 9, 12)
    np.testing.assert_allclose(g.mean(axis=(1, 2)), m.mean(axis=(1, 2)), atol=1e-5)
    with pytest.raises(ValueError, match="grid"):
        ea.to_grid(m, (30, 12))


@pytest.mark.parametrize("cam, image, want", [((2, 2), (32, 32), (8, 8)),
                                              ((3, 4), (48, 64), (9, 12)),
                                              ((7, 7), (224, 224), (14, 14)),
                                              ((8, 10), (64, 80), (8, 10)),
                                              ((2, 2), (6, 6), (6, 6))])
def test_common_grid_splits_cam_cells(cam, image, want):
    assert ea.common_grid(cam, image) == want


# --- agreement measures -----------------------------------------------------------------------

def test_identical_maps_agree_fully_and_reversed_maps_not_at_all():
    a = _random_maps(5, (8, 8), seed=2)
    same = ea.agreement(a, a.copy())
    np.testing.assert_allclose(same["spearman"], 1.0)
    np.testing.assert_allclose(same["iou"], 1.0)
    rev = ea.agreement(a, -a)
    np.testing.assert_allclose(rev["spearman"], -1.0)
    np.testing.assert_allclose(rev["iou"], 0.0)


def test_agreement_by_hand():
    a = np.array([[[1.0, 2.0], [3.0, 10.0]]])
    b = np.array([[[1.0, 2.0], [10.0, 3.0]]])
    r = ea.agreement(a, b, frac=0.25)  # ranks 1234 vs 1243: rho = 1 - 6*2/(4*15) = 0.8
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] < 0.2  # Pearson would say otherwise
    assert r["spearman"][0] == pytest.approx(0.8)
    assert r["iou"][0] == 0.0  # top cell (1,1) vs (1,0)
    assert ea.agreement(a, b, frac=0.5)["iou"][0] == 1.0  # both top halves are the bottom row
    c = np.array([[[4.0, 1.0], [2.0, 3.0]]])  # top half {(0,0),(1,1)} vs a's {(1,0),(1,1)}
    assert ea.agreement(a, c, frac=0.5)["iou"][0] == pytest.approx(1 / 3)


def test_independent_random_maps_agree_at_chance():
    a, b = _random_maps(400, (10, 10), seed=3), _random_maps(400, (10, 10), seed=4)
    r = ea.agreement(a, b, frac=0.2)
    assert abs(r["spearman"].mean()) < 0.02
    assert r["iou"].mean() == pytest.approx(ea.chance_iou(0.2), abs=0.01)
    assert ea.chance_iou(0.2) == pytest.approx(0.2 / 1.8)


def test_top_region_keeps_ties_and_flat_maps_have_none():
    m = np.array([[[5.0, 5.0], [1.0, 0.0]]])
    assert ea.top_region(m, 0.25).sum() == 2  # the cut value 5 appears twice
    flat = np.zeros((1, 2, 2))
    assert np.isnan(ea.top_iou(flat, m)[0])
    with pytest.raises(ValueError, match="grid"):
        ea.agreement(np.zeros((1, 2, 2)), np.zeros((1, 3, 3)))


def test_null_pairs_every_shap_map_with_every_other_cam():
    s = _random_maps(4, (6, 6), seed=5)
    null = ea.null_agreement(s, s, seed=0)
    assert len(null["other"]["spearman"]) == 4 * 3
    np.testing.assert_array_equal(np.bincount(null["other"]["image"]), [3, 3, 3, 3])
    assert np.all(null["other"]["spearman"] < 0.999)  # never paired with itself
    assert len(null["shuffled"]["iou"]) == 4


def test_compare_and_summary_are_consistent():
    cams = _random_maps(6, (16, 16), seed=6)
    shaps = cams + 0.5 * _random_maps(6, (16, 16), seed=7)  # related maps
    result = ea.compare(shaps, cams, (8, 8))
    obs = result["observed"]["spearman"]
    assert np.all(obs > 0.5)
    s = ea.summary(result)
    other = result["null"]["other"]["spearman"]
    assert s["spearman"]["median"] == pytest.approx(np.median(obs), abs=1e-4)
    assert s["spearman"]["null_other_median"] == pytest.approx(np.median(other), abs=1e-4)
    assert s["spearman"]["n_below_null_median"] == 0 and s["spearman"]["n_images"] == 6
    assert s["iou"]["n_null_pairs"] == 30 and s["grid"] == [8, 8]
    assert s["spearman"]["p_value"] < 0.01 and "overlapping" in ea.verdict(s)
    unrelated = ea.summary(ea.compare(_random_maps(6, (16, 16), seed=8), cams, (8, 8)))
    assert unrelated["spearman"]["p_value"] > 0.05 and "no better" in ea.verdict(unrelated)


def test_one_image_has_no_null():
    s = ea.summary(ea.compare(_random_maps(1, (8, 8), seed=11), _random_maps(1, (8, 8), seed=12),
                              (4, 4)))
    assert s["spearman"]["n_images"] == 1 and s["spearman"]["n_null_pairs"] == 0
    assert s["spearman"]["p_value"] is None and s["iou"]["n_below_null_median"] is None
    assert "too few" in ea.verdict(s)


def test_permutation_p_by_hand():
    m = np.array([[1.0, 0.0], [0.0, 1.0]])  # matched pairs agree, swapped ones do not
    # two pairings: identity (mean 1) and the swap (mean 0); p = (1 + #identity) / (1 + n)
    p = ea.permutation_p(m, n_perm=1000, seed=0)
    n_identity = (np.argsort(np.random.default_rng(0).random((1000, 2)), axis=1)[:, 0] == 0).sum()
    assert p == pytest.approx((1 + n_identity) / 1001)
    assert ea.permutation_p(np.eye(2)[::-1], n_perm=200) == 1.0  # the swap agrees more
    assert np.isnan(ea.permutation_p(np.full((2, 2), np.nan)))


def test_subsample_spreads_over_the_picks():
    picks = pd.DataFrame({"index": range(14), "label": np.repeat(range(7), 2)})
    assert len(ea.subsample(picks, 0)) == 14 and len(ea.subsample(picks, 50)) == 14
    few = ea.subsample(picks, 4)
    assert few["index"].tolist() == [0, 4, 9, 13]


def test_masker_spec_and_signed_overlay():
    assert ea.masker_spec("blur", (48, 64)) == "blur(12,12)"
    assert ea.masker_spec("inpaint_telea", (48, 64)) == "inpaint_telea"
    with pytest.raises(ValueError, match="masker"):
        ea.masker_spec("zeros", (48, 64))
    img = np.full((8, 8, 3), 128, np.uint8)
    v = np.zeros((4, 4))
    v[0, 0], v[3, 3] = 1.0, -1.0
    out = ea.signed_overlay(img, v)
    assert out.shape == (8, 8, 3) and out.dtype == np.uint8
    assert out[0, 0, 0] > out[0, 0, 2] and out[7, 7, 2] > out[7, 7, 0]
    assert tuple(out[4, 0]) == (128, 128, 128)


def test_agreement_plot_has_a_panel_per_measure():
    from skinlib import plots

    cams = _random_maps(5, (8, 8), seed=9)
    fig = plots.agreement_null(ea.compare(cams + _random_maps(5, (8, 8), seed=10), cams, (4, 4)))
    assert len(fig.axes) == 2


# --- SHAP on a tiny Keras model ---------------------------------------------------------------

keras = pytest.importorskip("keras")


@pytest.fixture(scope="module")
def left_half_model():
    """Logit of class 0 = mean of the image's left half (class 1 its negative): a model that
    cannot see the right half, so SHAP must give the right half nothing."""
    inp = keras.Input((16, 16, 3))
    h = keras.layers.Cropping2D(((0, 0), (0, 8)))(inp)
    h = keras.layers.GlobalAveragePooling2D()(h)
    out = keras.layers.Dense(2, activation="softmax", name="out")(h)
    model = keras.Model(inp, out)
    w = np.zeros((3, 2), np.float32)
    w[:, 0], w[:, 1] = 1 / 300, -1 / 300
    model.get_layer("out").set_weights([w, np.zeros(2, np.float32)])
    return model


def _uint8_images(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 16, 16, 3)).astype(np.float32)


def test_logit_function_gives_the_pre_softmax_scores(left_half_model):
    x = _uint8_images(3)
    logits = ea.logit_function(left_half_model)(x)
    np.testing.assert_allclose(logits[:, 0], x[:, :, :8].mean(axis=(1, 2)).sum(1) / 300,
                               rtol=1e-5)
    probs = left_half_model.predict(x, verbose=0)
    np.testing.assert_allclose(np.exp(logits) / np.exp(logits).sum(1, keepdims=True), probs,
                               rtol=1e-5)


def test_shap_credits_only_what_the_model_sees(left_half_model):
    x = np.repeat(_uint8_images(1, seed=1), 2, axis=0)  # one image, explained for both classes
    x[:, 4:12, 2:6] = 255.0  # a bright patch in the left half
    r = ea.shap_values(left_half_model, x, [0, 1], max_evals=40, masker="blur(4,4)")
    assert r["values"].shape == (2, 16, 16)
    np.testing.assert_allclose(r["values"][:, :, 8:], 0.0, atol=1e-9)
    assert np.abs(r["values"][:, :, :8]).sum() > 0
    assert ea.additivity_error(r) < 1e-5
    np.testing.assert_allclose(r["values"][1], -r["values"][0], atol=1e-9)  # logit 1 = -logit 0
    assert r["values"][0, 4:12, 2:6].sum() > 0  # blurring the bright patch lowers logit 0


def test_shap_is_repeatable_and_inpaint_adds_up(left_half_model):
    x = _uint8_images(2, seed=2)
    a = ea.shap_values(left_half_model, x, 0, max_evals=24, seed=3)
    b = ea.shap_values(left_half_model, x, 0, max_evals=24, seed=3)
    np.testing.assert_array_equal(a["values"], b["values"])
    assert ea.additivity_error(a) < 1e-5
    with pytest.raises(ValueError, match="max_evals"):
        ea.shap_values(left_half_model, x, 0, max_evals=2)
