"""Image plus metadata (notebook 10): the metadata encoding, the two-input model's shapes and
its tf.data pipeline on the fake dataset."""

import numpy as np
import pandas as pd
import pytest

from skinlib import data, metadata

TRAIN = pd.DataFrame({
    "age": [30.0, 50.0, np.nan, 70.0, 40.0],
    "sex": ["male", "female", "male", "unknown", None],
    "localization": ["back", "face", "unknown", "", "back"],
})


def test_encoder_fits_on_training_rows_only():
    enc = metadata.MetaEncoder.fit(TRAIN)
    assert enc.age_median == 45.0  # median of the known ages, not of the imputed ones
    assert enc.age_scale == pytest.approx(np.std([30, 50, 70, 40]))
    assert enc.sex_levels == ("female", "male", "unknown")
    assert enc.localization_levels == ("back", "face", "unknown")
    assert enc.feature_names == ["age", "age_missing", "sex=female", "sex=male", "sex=unknown",
                                 "localization=back", "localization=face",
                                 "localization=unknown"]
    assert metadata.MetaEncoder.from_dict(enc.to_dict()) == enc


def test_unknown_is_its_own_level_and_missing_values_are_counted():
    enc = metadata.MetaEncoder.fit(TRAIN)
    new = pd.DataFrame({"age": [np.nan, 45.0, "n/a"], "sex": ["", "Female ", "other"],
                        "localization": ["scalp", "unknown", np.nan]})
    x = enc.transform(new)
    names = enc.feature_names
    assert x.shape == (3, len(names)) and x.dtype == np.float32
    col = {n: x[:, i] for i, n in enumerate(names)}
    np.testing.assert_array_equal(col["age_missing"], [1, 0, 1])
    np.testing.assert_array_equal(col["age"], [0, 0, 0])  # the training median, standardised
    np.testing.assert_array_equal(col["sex=unknown"], [1, 0, 1])  # empty, and unseen "other"
    np.testing.assert_array_equal(col["sex=female"], [0, 1, 0])  # case and spaces cleaned
    np.testing.assert_array_equal(col["localization=unknown"], [1, 1, 1])
    one_hot = [n for n in names if "=" in n]
    assert (x[:, [names.index(n) for n in one_hot]].sum(axis=1) == 2).all()
    assert enc.counts(new) == {
        "n_rows": 3, "age": {"missing": 2},
        "sex": {"missing": 1, "unknown": 0, "unseen": 1},
        "localization": {"missing": 1, "unknown": 1, "unseen": 1}}
    assert enc.counts(TRAIN)["sex"] == {"missing": 1, "unknown": 1, "unseen": 0}


def test_encoder_refuses_frames_without_metadata():
    with pytest.raises(ValueError, match="metadata column"):
        metadata.MetaEncoder.fit(TRAIN.drop(columns="sex"))
    with pytest.raises(ValueError, match="no training row has an age"):
        metadata.MetaEncoder.fit(TRAIN.assign(age=np.nan))


@pytest.fixture(scope="module")
def fake_catalog(fake_root):
    return data.load_catalog(str(fake_root), validate=False)


def test_encoding_the_fake_catalog(fake_catalog):
    enc = metadata.MetaEncoder.fit(fake_catalog)
    counts = enc.counts(fake_catalog)
    assert counts["age"]["missing"] == int(fake_catalog["age"].isna().sum()) > 0
    assert counts["localization"]["unknown"] == int(
        (fake_catalog["localization"] == "unknown").sum()) > 0
    x = enc.transform(fake_catalog)
    assert x[:, enc.feature_names.index("age_missing")].sum() == counts["age"]["missing"]


def test_two_input_model_shapes():
    from skinlib.models.cnn import build_cnn
    from skinlib.models.fusion import build_fusion

    model = build_fusion((24, 32), 20, 7, arch="gap")
    assert {t.name for t in model.inputs} == {"image", "meta"}
    assert tuple(model.output.shape) == (None, 7)
    out = model({"image": np.zeros((3, 24, 32, 3), np.float32),
                 "meta": np.zeros((3, 20), np.float32)})
    np.testing.assert_allclose(np.asarray(out).sum(axis=1), 1.0, rtol=1e-5)
    # the image trunk is the baseline CNN's: same layers, same weights shapes
    cnn = build_cnn((24, 32), 7, arch="gap")
    trunk = [layer.name for layer in cnn.layers if layer.name != "probs"]
    assert all(model.get_layer(name).get_config()["name"] == name for name in trunk[1:])
    extra = model.count_params() - cnn.count_params()
    assert extra == (20 * 32 + 32) + 32 * 7  # the metadata branch and its softmax inputs
    with pytest.raises(ValueError, match="n_meta"):
        build_fusion((24, 32), 0, 7)


def test_fusion_dataset_pairs_images_with_their_metadata(fake_catalog):
    from skinlib.pipeline import make_dataset
    from skinlib.training.fusion import fusion_dataset

    frame = fake_catalog.head(40)
    meta = np.arange(40 * 3, dtype=np.float32).reshape(40, 3)  # row i holds 3i, 3i+1, 3i+2
    ds = fusion_dataset(frame, meta, image_size=(12, 16), batch_size=16)
    xs = list(ds)
    assert [tuple(x["meta"].shape) for x, _ in xs] == [(16, 3), (16, 3), (8, 3)]
    images = np.concatenate([x["image"].numpy() for x, _ in xs])
    plain = np.concatenate([x.numpy() for x, _ in make_dataset(frame, image_size=(12, 16),
                                                                batch_size=16)])
    np.testing.assert_array_equal(images, plain)  # same images, same order as make_dataset
    np.testing.assert_array_equal(np.concatenate([x["meta"].numpy() for x, _ in xs]), meta)
    # training: shuffled and augmented, but every image still carries its own row
    train = fusion_dataset(frame, meta, image_size=(12, 16), batch_size=16, training=True,
                           augment=False, seed=1)
    seen_meta, seen_y, seen_x = [], [], []
    for x, y in train:
        seen_meta.append(x["meta"].numpy())
        seen_x.append(x["image"].numpy())
        seen_y.append(y.numpy())
    rows = (np.concatenate(seen_meta)[:, 0] / 3).astype(int)
    assert sorted(rows) == list(range(40)) and list(rows) != list(range(40))
    np.testing.assert_array_equal(np.concatenate(seen_x), plain[rows])
    np.testing.assert_array_equal(np.concatenate(seen_y), frame["label"].to_numpy()[rows])
    with pytest.raises(ValueError, match="encoder.transform"):
        fusion_dataset(frame, meta[:10], image_size=(12, 16), batch_size=16)


@pytest.mark.parametrize("rule", ["argmax", "prior_corrected", "thresholds"])
def test_apply_recorded_reproduces_the_evaluated_predictions(rule):
    from skinlib import decision, info, metrics

    rng = np.random.default_rng(3)
    y = rng.choice(7, 300, p=[0.05, 0.05, 0.1, 0.05, 0.1, 0.6, 0.05])
    probs = rng.dirichlet(np.ones(7), 300)
    probs[np.arange(300), y] += 0.5
    probs /= probs.sum(axis=1, keepdims=True)
    params = decision.rule_params(rule, train_priors=decision.priors(y, 7), y_val=y,
                                  probs_val=probs)
    result = metrics.evaluate(y, probs, info.classes(), n_bootstrap=0, **params)
    pred = decision.apply_recorded(probs, result)
    assert np.bincount(pred, minlength=7).tolist() == np.asarray(
        result["confusion_matrix"]).sum(axis=0).tolist()


@pytest.mark.slow
def test_train_fusion_with_class_weights_and_reload(fake_root, tmp_path):
    from skinlib import session
    from skinlib.training.fusion import encoder_path, predict_fusion, train_fusion

    s = session.start("smoke", str(fake_root), str(tmp_path / "run"), quiet=True,
                      overrides={"epochs": 1, "image_size": (16, 16), "balance": "weights"})
    model, record, enc = train_fusion(s, "10_t", verbose=0)
    assert record["epochs_run"] == 1 and not record["loaded"]
    assert metadata.MetaEncoder.from_dict(s.run.read_record(encoder_path("10_t"))) == enc
    test = s.frame("test")
    probs = predict_fusion(model, test, enc.transform(test), (16, 16))
    again, record2, _ = train_fusion(s, "10_t", verbose=0)
    assert record2["loaded"]
    np.testing.assert_allclose(predict_fusion(again, test, enc.transform(test), (16, 16)), probs,
                               atol=1e-5)
    with pytest.raises(ValueError, match="supports 'none' and 'weights'"):
        train_fusion(s, "10_u", balance="resample")
