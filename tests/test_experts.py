"""Class-expert fusion: built from saved discriminators, frozen trunks, flat graph."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from skinlib.models import experts  # noqa: E402
from skinlib.rundir import RunDir  # noqa: E402


def tiny_discriminator(size: int = 16, seed: int = 0) -> "keras.Model":
    """A stand-in with the agreed shape of ``skinlib.models.dcgan.build_discriminator``."""
    keras.utils.set_random_seed(seed)
    L = keras.layers
    inputs = keras.Input((size, size, 3))
    x = L.Conv2D(8, 3, strides=2, padding="same", name="conv1")(inputs)
    x = L.LeakyReLU(0.2, name="lrelu1")(x)
    x = L.Dropout(0.3, name="drop1")(x)
    x = L.Conv2D(16, 3, strides=2, padding="same", name="conv2")(x)
    x = L.LeakyReLU(0.2, name="disc_features")(x)
    x = L.Flatten(name="flatten")(x)
    return keras.Model(inputs, L.Dense(1, name="logit")(x), name="discriminator")


@pytest.fixture()
def saved_run(tmp_path):
    run = RunDir(tmp_path / "run").ensure()
    for i, dx in enumerate(("mel", "df")):
        path = experts.discriminator_path(run, dx)
        path.parent.mkdir(parents=True)
        tiny_discriminator(seed=i).save(path)
    return run


def test_builds_from_saved_discriminators_with_frozen_trunks(saved_run):
    discs = experts.load_discriminators(saved_run, ["mel", "df"])
    model = experts.build_expert_model(discs, (12, 16), 7, cnn_filters=(4, 8), dense_units=8)
    names = [lyr.name for lyr in model.layers]
    assert len(names) == len(set(names))
    assert experts.expert_classes(model) == ["df", "mel"]
    trunk = experts.expert_layers(model)
    assert trunk and not any(lyr.trainable for lyr in trunk)
    assert all(not lyr.trainable_weights for lyr in trunk)
    assert "expert_mel_disc_features" in names and "expert_mel_flatten" not in names
    # weights copied from the saved discriminator
    src = discs["mel"].get_layer("conv1").get_weights()[0]
    np.testing.assert_array_equal(model.get_layer("expert_mel_conv1").get_weights()[0], src)
    # the CNN branch and head train
    assert model.get_layer("cnn_conv1").trainable and model.get_layer("probs").trainable
    probs = model.predict(np.random.default_rng(0).uniform(0, 255, (3, 12, 16, 3)), verbose=0)
    assert probs.shape == (3, 7)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    table = experts.branch_table(model)
    assert table.loc["expert mel", "trainable params"] == 0
    assert table.loc["CNN branch", "trainable params"] > 0


def test_frozen_trunk_unchanged_by_training_and_stage2_unfreezes(saved_run):
    discs = experts.load_discriminators(saved_run, ["mel"])
    model = experts.build_expert_model(discs, (8, 8), 3, cnn_filters=(4,), dense_units=4)
    before = model.get_layer("expert_mel_conv2").get_weights()[0].copy()
    x = np.random.default_rng(1).uniform(0, 255, (8, 8, 8, 3)).astype("float32")
    y = np.arange(8) % 3
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, verbose=0)
    np.testing.assert_array_equal(model.get_layer("expert_mel_conv2").get_weights()[0], before)
    experts.set_experts_trainable(model, True)
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, verbose=0)
    assert not np.allclose(model.get_layer("expert_mel_conv2").get_weights()[0], before)


def test_missing_discriminator_names_notebook_03(tmp_path):
    run = RunDir(tmp_path / "empty").ensure()
    with pytest.raises(FileNotFoundError, match="03_dcgan_minority"):
        experts.load_discriminators(run, ["vasc"])


def test_discriminator_without_features_layer_is_refused():
    inputs = keras.Input((8, 8, 3))
    bad = keras.Model(inputs, keras.layers.Dense(1)(keras.layers.Flatten()(inputs)))
    with pytest.raises(ValueError, match="disc_features"):
        experts.build_expert_model({"mel": bad}, (8, 8), 3)


def test_gradcam_reaches_an_expert_layer_of_the_flat_graph(saved_run):
    pytest.importorskip("tf_keras_vis")
    from tf_keras_vis.gradcam import Gradcam
    from tf_keras_vis.utils.model_modifiers import ReplaceToLinear
    from tf_keras_vis.utils.scores import CategoricalScore

    discs = experts.load_discriminators(saved_run, ["mel"])
    model = experts.build_expert_model(discs, (16, 16), 3, cnn_filters=(4,), dense_units=4)
    assert not any(isinstance(lyr, keras.Model) for lyr in model.layers)  # flat graph
    cam = Gradcam(model, model_modifier=ReplaceToLinear(), clone=True)
    x = np.random.default_rng(2).uniform(0, 255, (2, 16, 16, 3)).astype("float32")
    maps = cam(CategoricalScore([0, 1]), x, penultimate_layer="expert_mel_disc_features")
    assert maps.shape == (2, 16, 16) and np.isfinite(maps).all()
