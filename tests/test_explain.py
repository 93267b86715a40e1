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
    # the randomisation check: conv5_block3_out is 2x2 at 64 px, conv3_block4_out 8x8
    assert explain.check_layer(model).name == "conv3_block4_out"
    assert explain.check_layer(small).name == "conv2_block3_out"
    steps = [label for label, _ in explain.cascade_steps(model)]
    assert steps[:4] == ["probs", "head_dense", "head_bn", "conv5_block3"]
    assert steps[-1] == "conv1" and len(steps) == 3 + 16 + 1


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


def test_check_layer_has_enough_cells(cnn):
    assert explain.check_layer(cnn).name == "block3_relu2"  # 8x8 at 32 px; block4 is 4x4
    assert tuple(explain.check_layer(build_cnn((48, 64), 7, arch="gap")).output.shape[1:3]) \
        == (6, 8)
    with pytest.raises(ValueError, match="64x64 cells"):
        explain.check_layer(cnn, min_cells=(64, 64))


def _tiny():
    """Input -> fixed preprocessing Dense -> two convolutions -> GAP -> softmax."""
    inp = keras.Input((12, 16, 3))
    x = keras.layers.Dense(3, trainable=False, name=explain.FIXED_LAYERS[0])(inp)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="c1")(x)
    x = keras.layers.Conv2D(4, 3, padding="same", name="c2")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, keras.layers.Dense(3, activation="softmax", name="probs")(x))


def test_cascade_runs_from_the_output_to_the_input(cnn):
    assert explain.cascade_steps(_tiny()) == [("probs", ["probs"]), ("c2", ["c2"]),
                                              ("c1", ["c1"])]  # the fixed layer stays
    steps = explain.cascade_steps(cnn)
    assert [label for label, _ in steps] == ["probs", "block4", "block3", "block2", "block1"]
    names = [n for _, group in steps for n in group]
    weighted = [layer.name for layer in cnn.layers if layer.weights]
    assert names == weighted[::-1]


def test_cascade_is_cumulative_and_a_random_top_layer_changes_the_maps(cnn):
    x = _images(6, (32, 32), seed=5)
    idx = np.arange(6) % 7
    before = [w.copy() for w in cnn.get_weights()]
    result = explain.randomization_check(cnn, x, idx, seed=1, n_bootstrap=200)
    assert all(np.array_equal(a, b) for a, b in zip(before, cnn.get_weights()))  # untouched
    trained, cascade = result["maps_trained"], result["maps_cascade"]
    assert cascade.shape == (5, 6, 8, 8) and result["layer"] == "block3_relu2"
    assert not np.allclose(cascade[0], trained, atol=1e-3)  # only the top layer randomised
    top_only = keras.models.clone_model(cnn)
    top_only.set_weights(cnn.get_weights())
    top_only.get_layer("probs").set_weights(
        explain.randomized_copy(cnn, 1).get_layer("probs").get_weights())
    kw = dict(upsample=False, relu=False)
    np.testing.assert_allclose(cascade[0], explain.gradcam(top_only, x, idx, "block3_relu2", **kw),
                               atol=1e-4)
    fully = explain.gradcam(explain.randomized_copy(cnn, 1), x, idx, "block3_relu2", **kw)
    np.testing.assert_allclose(cascade[-1], fully, atol=1e-4)  # every step randomised at the end
    assert [s["randomised"] for s in result["steps"]] == ["probs", "block4", "block3", "block2",
                                                         "block1"]
    for step in result["steps"]:
        assert len(step["abs_rho"]["values"]) == 6 and step["verdict"] in (
            "sensitive", "insensitive", "undetermined")
    assert len(result["null"]["abs_rho"]["values"]) == 6 * 3  # 3 random models, 3 pairs
    assert result["verdict"] in ("sensitive", "insensitive")


def test_verdict_follows_the_null():
    rng = np.random.default_rng(0)
    null = np.abs(rng.normal(0, 0.2, 300))
    like_null = np.quantile(null, np.linspace(0, 1, 40))  # the null's own distribution
    near_one = rng.uniform(0.93, 1.0, 40)
    v = explain.randomization_verdict({"top": like_null}, null, seed=1)
    assert v["per_depth"]["top"]["verdict"] == "sensitive" and v["verdict"] == "sensitive"
    v = explain.randomization_verdict({"top": near_one}, null, seed=1)
    assert v["per_depth"]["top"]["verdict"] == "insensitive" and v["verdict"] == "insensitive"
    assert v["first_null_depth"] is None
    # alike the trained maps until block b, at the null level from c on: c is the first depth
    v = explain.randomization_verdict({"a": near_one, "b": near_one * 0.9, "c": like_null,
                                       "d": like_null * 0.5}, -null, seed=1)  # |rho| is taken
    assert [d["verdict"] for d in v["per_depth"].values()] == ["insensitive", "insensitive",
                                                               "sensitive", "sensitive"]
    assert v["first_null_depth"] == "c" and v["verdict"] == "sensitive"
    # back above the null at the deepest step: not sensitive where it counts
    v = explain.randomization_verdict({"a": like_null, "b": near_one}, null, seed=1)
    assert v["first_null_depth"] is None and v["verdict"] == "insensitive"
    # the level is the null's, not a fixed number: a high null makes 0.7 "sensitive", a low
    # one makes 0.3 "insensitive"
    high = explain.randomization_verdict({"a": np.linspace(0.6, 0.8, 40)},
                                         np.linspace(0.6, 0.8, 300), seed=1)
    low = explain.randomization_verdict({"a": rng.uniform(0.25, 0.35, 40)},
                                        np.abs(rng.normal(0, 0.05, 300)), seed=1)
    assert (high["verdict"], low["verdict"]) == ("sensitive", "insensitive")
    nan = explain.randomization_verdict({"a": [np.nan]}, null)
    assert nan["verdict"] == "undetermined"


def test_ssim_of_maps():
    a = np.random.default_rng(0).random((3, 6, 8)).astype("float32")
    np.testing.assert_allclose(explain.ssim(a, a), 1, atol=1e-5)
    b = np.random.default_rng(1).random((3, 6, 8)).astype("float32")
    assert (explain.ssim(a, b) < 0.5).all()


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
