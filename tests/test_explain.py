"""Grad-CAM (own and tf-keras-vis), overlays and the randomisation sanity check."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from skinlib import explain  # noqa: E402
from skinlib.models.cnn import build_cnn  # noqa: E402


def _images(n, size, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (n, *size, 3)).astype("float32")


@pytest.fixture(scope="module")
def cnn():
    """A baseline CNN given a few steps of training so its maps are not degenerate."""
    keras.utils.set_random_seed(0)
    m = build_cnn((32, 32), 7, arch="gap")
    m.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    x = _images(28, (32, 32), seed=3)
    x[:, 8:24, 8:24, 0] = (np.arange(28) % 7)[:, None, None] * 36.0  # a class-coded red patch
    m.fit(x, np.arange(28) % 7, epochs=3, batch_size=14, verbose=0)
    return m


def test_feature_layer_is_the_last_spatial_map(cnn):
    layer = explain.feature_layer(cnn)
    assert layer.name.startswith("block4") and len(layer.output.shape) == 4
    seed = build_cnn((24, 32), 7, arch="seed")
    assert explain.feature_layer(seed).name == "block3_drop"


@pytest.mark.parametrize("arch", ["gap", "seed"])
def test_own_gradcam_agrees_with_tf_keras_vis_on_the_baseline(cnn, arch):
    model = cnn if arch == "gap" else build_cnn((24, 32), 7, arch="seed")
    x = _images(4, model.input_shape[1:3])
    result = explain.agreement(model, x, [0, 1, 2, 3])
    assert result["feature_corr"] > 0.99
    assert result["input_corr"] > 0.99


def test_shapes_and_range(cnn):
    x = _images(3, (32, 32))
    for maps in (explain.gradcam(cnn, x, 1), explain.gradcam(cnn, x, [0, 1, 2])):
        assert maps.shape == (3, 32, 32) and maps.dtype == np.float32
        assert maps.min() >= 0 and maps.max() <= 1
    small = explain.gradcam(cnn, x, 1, upsample=False)
    assert small.shape[1:] == tuple(explain.feature_layer(cnn).output.shape[1:3])
    for method in explain.METHODS:
        m = explain.keras_vis_cam(cnn, x, 2, method, max_n=4)
        assert m.shape == (3, 32, 32) and 0 <= m.min() and m.max() <= 1
    with pytest.raises(ValueError, match="method"):
        explain.keras_vis_cam(cnn, x, 2, "lime")
    with pytest.raises(ValueError, match="resize"):
        explain.gradcam(cnn, _images(1, (20, 20)), 0)


def test_caller_model_keeps_its_softmax(cnn):
    explain.keras_vis_cam(cnn, _images(1, (32, 32)), 0)
    assert cnn.layers[-1].activation.__name__ == "softmax"


def test_works_on_a_sequential_model():
    seq = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Rescaling(1 / 255),
                            keras.layers.Conv2D(8, 3, activation="relu"),
                            keras.layers.MaxPooling2D(), keras.layers.Conv2D(8, 3),
                            keras.layers.GlobalAveragePooling2D(),
                            keras.layers.Dense(7, activation="softmax")])
    flat = keras.Model(seq.inputs, seq.outputs)
    maps = explain.gradcam(flat, _images(2, (32, 32)), 3)
    assert maps.shape == (2, 32, 32)
    assert explain.agreement(flat, _images(2, (32, 32)), 3)["feature_corr"] > 0.99


@pytest.mark.slow
def test_works_on_resnet50():
    from skinlib.models.transfer import build_resnet50

    model = build_resnet50((64, 64), 7, weights=None, mixed_precision=False)
    assert explain.feature_layer(model).name == "conv5_block3_out"
    x = _images(2, (64, 64))
    assert explain.gradcam(model, x, 4).shape == (2, 64, 64)
    assert explain.agreement(model, x, 4)["feature_corr"] > 0.99
    small = build_resnet50((32, 32), 7, weights=None, mixed_precision=False)
    assert min(explain.feature_layer(small).output.shape[1:3]) >= 2  # 1x1 maps show nothing


def test_works_on_the_expert_model():
    from skinlib.models import dcgan, experts

    discs = {dx: dcgan.build_discriminator(32, filters=16) for dx in ("mel", "df")}
    model = experts.build_expert_model(discs, (32, 32), 7, cnn_filters=(8, 16), dense_units=8)
    x = _images(2, (32, 32))
    maps = explain.gradcam(model, x, 1)
    assert maps.shape == (2, 32, 32) and 0 <= maps.min() and maps.max() <= 1
    expert_map = explain.gradcam(model, x, 1, "expert_mel_disc_features")
    assert expert_map.shape == (2, 32, 32)
    assert explain.agreement(model, x, 1)["feature_corr"] > 0.99


def test_randomisation_check_reports_rank_correlation(cnn):
    x = _images(4, (32, 32), seed=5)
    result = explain.randomization_check(cnn, x, [0, 1, 2, 3], seed=1)
    assert result["n_images"] == 4 and len(result["spearman_per_image"]) == 4
    assert -1 <= result["spearman_mean"] <= 1
    same = explain.rank_correlation(result["maps_trained"], result["maps_trained"])
    assert np.allclose(same[np.isfinite(same)], 1)
    assert result["maps_random"].shape == (4, 32, 32)


def test_rank_correlation_and_normalize():
    a = np.random.default_rng(0).random((2, 5, 5))
    assert np.allclose(explain.rank_correlation(a, a ** 3), 1)
    assert np.allclose(explain.rank_correlation(a, -a), -1)
    flat = explain.normalize_maps(np.ones((1, 4, 4)))
    assert np.all(flat == 0)


def test_overlay_is_at_the_image_size():
    img = np.full((450, 600, 3), 128, np.uint8)
    cam = np.zeros((7, 7), np.float32)
    cam[3, 3] = 1
    out = explain.overlay(img, cam)
    assert out.shape == (450, 600, 3) and out.dtype == np.uint8
    assert not np.array_equal(out[225, 300], out[0, 0])  # hot centre, cold corner
    with pytest.raises(ValueError, match="RGB"):
        explain.overlay(np.zeros((10, 10)), cam)
