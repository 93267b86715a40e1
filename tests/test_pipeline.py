"""The tf.data pipeline: shapes, value range, order, augmentation only in training, balancing."""

import numpy as np
import pandas as pd
import pytest

from skinlib import data, pipeline


@pytest.fixture(scope="module")
def catalog(fake_root):
    return data.load_local(fake_root)


def test_batches_are_float_rgb_0_255_in_frame_order(catalog):
    frame = catalog.iloc[:50]
    ds = pipeline.make_dataset(frame, image_size=(24, 32), batch_size=16)
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in ds])
    x, y = np.concatenate(xs), np.concatenate(ys)
    assert x.shape == (50, 24, 32, 3) and x.dtype == np.float32 and y.dtype == np.int32
    assert x.min() >= 0 and x.max() <= 255 and x.max() > 1  # not rescaled to [0, 1]
    np.testing.assert_array_equal(y, frame["label"].to_numpy())


def test_evaluation_is_deterministic_training_is_augmented(catalog):
    frame = catalog.iloc[:32]
    ev = pipeline.make_dataset(frame, image_size=(24, 32), batch_size=32)
    a, b = (next(iter(ev))[0].numpy() for _ in range(2))
    np.testing.assert_array_equal(a, b)
    tr = pipeline.make_dataset(frame, image_size=(24, 32), batch_size=32, training=True,
                               augment=True, seed=1)
    x, y = next(iter(tr))
    assert not np.allclose(np.sort(x.numpy().ravel()), np.sort(a.ravel()))
    assert sorted(y.numpy().tolist()) == sorted(frame["label"].tolist())


def test_training_without_augmentation_only_shuffles(catalog):
    frame = catalog.iloc[:32]
    ev = next(iter(pipeline.make_dataset(frame, image_size=(24, 32), batch_size=32)))[0].numpy()
    tr = next(iter(pipeline.make_dataset(frame, image_size=(24, 32), batch_size=32,
                                         training=True, augment=False)))[0].numpy()
    key = lambda arr: sorted(map(float, arr.reshape(len(arr), -1).sum(1)))  # noqa: E731
    np.testing.assert_allclose(key(tr), key(ev), rtol=1e-6)


def test_resample_balances_classes(catalog):
    ds = pipeline.make_dataset(catalog, image_size=(24, 32), batch_size=64, training=True,
                               augment=False, balance="resample", n_classes=7, seed=0)
    labels = np.concatenate([y.numpy() for _, y in ds.take(20)])
    share = np.bincount(labels, minlength=7) / len(labels)
    assert share.max() < 0.22 and share.min() > 0.07  # 1/7 = 0.143 each
    assert catalog["dx"].value_counts(normalize=True).max() > 0.4  # the data is skewed


def test_synthetic_rows_refused_in_evaluation(catalog):
    frame = catalog.iloc[:8].assign(synthetic=[False] * 7 + [True])
    with pytest.raises(ValueError, match="synthetic images may only be used for training"):
        pipeline.make_dataset(frame, image_size=(24, 32), batch_size=4)
    pipeline.make_dataset(frame, image_size=(24, 32), batch_size=4, training=True)


def test_bad_frames():
    with pytest.raises(ValueError, match="lacks column"):
        pipeline.make_dataset(pd.DataFrame({"x": [1]}), image_size=(8, 8), batch_size=1)
    with pytest.raises(ValueError, match="empty"):
        pipeline.make_dataset(pd.DataFrame({"path": [], "label": []}), image_size=(8, 8),
                              batch_size=1)
    with pytest.raises(ValueError, match="balance"):
        pipeline.make_dataset(pd.DataFrame({"path": ["a"], "label": [0]}), image_size=(8, 8),
                              batch_size=1, balance="magic")


def test_load_array(catalog):
    x, y = pipeline.load_array(catalog.iloc[:10], (24, 32))
    assert x.shape == (10, 24, 32, 3) and x.dtype == np.uint8
    np.testing.assert_array_equal(y, catalog["label"].iloc[:10])


# --------------------------------------------------------------------------------------------
# the decoded-image cache
# --------------------------------------------------------------------------------------------

@pytest.fixture
def decodes(monkeypatch):
    """How many images each cache build decoded (a spy on image_cache._decode_into)."""
    from skinlib import image_cache

    calls = []
    real = image_cache._decode_into

    def spy(array, paths, *args, **kwargs):
        calls.append(len(paths))
        return real(array, paths, *args, **kwargs)

    monkeypatch.setattr(image_cache, "_decode_into", spy)
    return calls


def _images(ds):
    return np.concatenate([x.numpy() for x, _ in ds])


def test_cache_built_once_then_reused(catalog, tmp_path, decodes):
    frame = catalog.iloc[:40]
    first = _images(pipeline.make_dataset(frame, image_size=(24, 32), batch_size=16,
                                          cache_dir=tmp_path))
    npy = list((tmp_path / "24x32_area").glob("*.npy"))
    assert decodes == [40] and len(npy) == 1
    mtime = npy[0].stat().st_mtime_ns
    again = _images(pipeline.make_dataset(frame.iloc[::-1], image_size=(24, 32), batch_size=16,
                                          cache_dir=tmp_path))
    train = pipeline.make_dataset(frame.iloc[:30], image_size=(24, 32), batch_size=16,
                                  cache_dir=tmp_path, training=True)
    next(iter(train))
    assert decodes == [40]  # neither a reordered frame nor a subset decodes again
    assert npy[0].stat().st_mtime_ns == mtime
    np.testing.assert_array_equal(again, first[::-1])


def test_cache_pixels_equal_the_direct_decode(catalog, tmp_path):
    frame = catalog.iloc[:24]
    direct = _images(pipeline.make_dataset(frame, image_size=(24, 32), batch_size=8,
                                           cache=False))
    cached = _images(pipeline.make_dataset(frame, image_size=(24, 32), batch_size=8,
                                           cache_dir=tmp_path))
    np.testing.assert_array_equal(cached, direct)
    one = pipeline.decode_resize(frame["path"].iloc[3], (24, 32)).numpy()
    np.testing.assert_array_equal(cached[3], one)
    x, _ = pipeline.load_array(frame, (24, 32), cache_dir=tmp_path)
    np.testing.assert_array_equal(x, direct.astype(np.uint8))


def test_cache_is_keyed_by_size_and_method(catalog, tmp_path, decodes):
    frame = catalog.iloc[:10]
    a, _ = pipeline.load_array(frame, (24, 32), cache_dir=tmp_path)
    b, _ = pipeline.load_array(frame, (12, 16), cache_dir=tmp_path)
    c, _ = pipeline.load_array(frame, (24, 32), cache_dir=tmp_path, resize="bilinear")
    assert decodes == [10, 10, 10]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "12x16_area", "24x32_area", "24x32_bilinear"]
    assert b.shape == (10, 12, 16, 3) and not np.array_equal(a, c)
    with pytest.raises(ValueError, match="resize method 'nearest'"):
        pipeline.load_array(frame, (24, 32), cache_dir=tmp_path, resize="nearest")


def test_area_resize_averages_when_shrinking_and_interpolates_when_growing():
    from skinlib.image_cache import resize_uint8

    checker = np.indices((8, 8)).sum(0) % 2 * 200  # one-pixel checkerboard, 0 / 200
    img = np.repeat(checker[..., None], 3, axis=2).astype(np.uint8)
    small = resize_uint8(img, (4, 4)).numpy()
    assert small.dtype == np.uint8 and (small == 100).all()  # each pixel the 2x2 mean
    big = resize_uint8(img[:2, :2], (2, 4)).numpy()[..., 0]  # width grows: no repeated pixels
    assert big.shape == (2, 4) and len(np.unique(big[0])) > 2


def test_rows_outside_the_cache_are_decoded_alone(catalog, tmp_path, decodes):
    """Notebook 04's GAN PNGs: only the new files are decoded, into a second shard."""
    from PIL import Image

    real = catalog.iloc[:20]
    pipeline.load_array(real, (24, 32), cache_dir=tmp_path)
    gan = []
    for i in range(3):
        path = tmp_path / f"gan_{i}.png"
        Image.fromarray(np.full((32, 32, 3), 40 * i, np.uint8)).save(path)
        gan.append({"path": str(path), "label": 1, "synthetic": True})
    mixed = pd.concat([real.assign(synthetic=False), pd.DataFrame(gan)], ignore_index=True)
    x = _images(pipeline.make_dataset(mixed, image_size=(24, 32), batch_size=8,
                                      cache_dir=tmp_path, training=True, augment=False))
    assert decodes == [20, 3] and len(x) == 23
    assert len(list((tmp_path / "24x32_area").glob("*.npy"))) == 2
    cached, _ = pipeline.load_array(pd.DataFrame(gan).drop(columns="synthetic"), (24, 32),
                                    cache_dir=tmp_path)
    assert decodes == [20, 3]
    np.testing.assert_array_equal(cached[:, 0, 0, 0], [0, 40, 80])


def test_a_changed_file_is_decoded_again_and_dead_shards_pruned(catalog, tmp_path, decodes):
    import os
    import shutil

    folder = tmp_path / "copies"
    folder.mkdir()
    paths = [shutil.copy(p, folder / f"{i}.jpg") for i, p in enumerate(catalog["path"][:4])]
    frame = pd.DataFrame({"path": [str(p) for p in paths], "label": 0})
    pipeline.load_array(frame, (24, 32), cache_dir=tmp_path)
    st = os.stat(paths[0])
    os.utime(paths[0], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    pipeline.load_array(frame, (24, 32), cache_dir=tmp_path)
    assert decodes == [4, 1]
    shutil.rmtree(folder)
    pipeline.load_array(catalog.iloc[:2], (24, 32), cache_dir=tmp_path)
    assert len(list((tmp_path / "24x32_area").glob("*.npy"))) == 1  # the copies' shards


def test_bad_or_missing_image_is_named(catalog, tmp_path):
    bad = tmp_path / "ISIC_bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    frame = pd.concat([catalog.iloc[:5], pd.DataFrame({"path": [str(bad)], "label": [0]})])
    with pytest.raises(ValueError, match=r"ISIC_bad\.jpg: TensorFlow cannot decode"):
        pipeline.make_dataset(frame, image_size=(24, 32), batch_size=4, cache_dir=tmp_path)
    gone = frame.assign(path=[*frame["path"][:5], str(tmp_path / "ISIC_gone.jpg")])
    for cache in (True, False):
        with pytest.raises(FileNotFoundError, match="ISIC_gone.jpg"):
            pipeline.make_dataset(gone, image_size=(24, 32), batch_size=4, cache=cache,
                                  cache_dir=tmp_path)
    assert not list((tmp_path / "24x32_area").glob("*.npy"))  # nothing half-written


def test_cache_folder_from_the_environment(monkeypatch, tmp_path):
    from skinlib import image_cache

    monkeypatch.setenv("SKINLIB_CACHE_DIR", str(tmp_path / "env"))
    assert image_cache.size_folder((24, 32)) == tmp_path / "env" / "24x32_area"
    assert image_cache.cache_root(tmp_path / "x") == tmp_path / "x"
    monkeypatch.delenv("SKINLIB_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert image_cache.cache_root() == tmp_path / "xdg" / "skinlib" / "images"


# --------------------------------------------------------------------------------------------
# uint8 batches and augmentation inside the model
# --------------------------------------------------------------------------------------------

def test_uint8_output_is_never_augmented_in_the_pipeline(catalog):
    frame = catalog.iloc[:16]
    ev = next(iter(pipeline.make_dataset(frame, image_size=(24, 32), batch_size=16)))[0]
    tr = next(iter(pipeline.make_dataset(frame, image_size=(24, 32), batch_size=16,
                                         training=True, output="uint8", seed=3)))[0].numpy()
    assert tr.dtype == np.uint8
    key = lambda arr: sorted(map(float, arr.reshape(len(arr), -1).sum(1)))  # noqa: E731
    np.testing.assert_allclose(key(tr.astype(np.float32)), key(ev.numpy()), rtol=1e-6)
    with pytest.raises(ValueError, match="output='int8'"):
        pipeline.make_dataset(frame, image_size=(24, 32), batch_size=4, output="int8")


def test_augment_layer(tmp_path):
    import keras
    import tensorflow as tf

    x = np.random.default_rng(0).integers(0, 256, (8, 12, 16, 3)).astype("uint8")
    layer = pipeline.Augment(seed=1, rotation=0.0, zoom=0.0)
    np.testing.assert_array_equal(layer(tf.constant(x)).numpy(), x.astype("float32"))
    out = layer(tf.constant(x), training=True).numpy()
    assert out.dtype == np.float32 and out.shape == x.shape and 0 <= out.min() <= out.max() <= 255
    assert not np.allclose(out, x) and not np.allclose(out, layer(x, training=True).numpy())
    inputs = keras.Input((12, 16, 3))
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(pipeline.Augment(2)(inputs)))
    model.save(tmp_path / "m.keras")
    again = keras.models.load_model(tmp_path / "m.keras")
    assert again.layers[1].get_config()["seed"] == 2 and again.layers[1].ranges["zoom"] == 0.1
    np.testing.assert_allclose(again.predict(x, verbose=0), model.predict(x, verbose=0))


def test_affine_warp_matches_tensorflows_projective_transform():
    """The XLA-compilable warp gives TensorFlow's own op's pixels (reflect fill, bilinear) for
    rotations, zooms, flips and shifts far outside the image."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (16, 24, 32, 3)).astype("float32")
    angle, scale = rng.uniform(-np.pi, np.pi, 16), rng.uniform(0.5, 1.5, 16)
    flip = np.where(rng.uniform(size=16) < 0.5, -1.0, 1.0)
    cos, sin = np.cos(angle) * scale, np.sin(angle) * scale
    affine = np.stack([cos * flip, -sin, rng.uniform(-60, 60, 16), sin * flip, cos,
                       rng.uniform(-60, 60, 16)], axis=1).astype("float32")
    ref = tf.raw_ops.ImageProjectiveTransformV3(
        images=x, transforms=np.pad(affine, [[0, 0], [0, 2]]), output_shape=[24, 32],
        fill_value=0.0, interpolation="BILINEAR", fill_mode="REFLECT").numpy()
    warped = pipeline.affine_warp(tf.constant(x), tf.constant(affine)).numpy()
    np.testing.assert_allclose(warped, ref, atol=0.05)
    same = np.tile([[1, 0, 0, 0, 1, 0]], (16, 1)).astype("float32")
    np.testing.assert_allclose(pipeline.affine_warp(tf.constant(x), same).numpy(), x, atol=1e-4)


def test_augmentation_compiles_under_xla():
    """The in-model augmentation runs inside an XLA-compiled step (a GPU compiles every model
    with XLA), with the same pixels as without XLA; the pipeline's warp op cannot."""
    import tensorflow as tf

    x = tf.constant(np.random.default_rng(1).integers(0, 256, (4, 12, 16, 3)).astype("uint8"))
    affine = tf.constant([[0.9, 0.2, 1.0, -0.2, 0.9, 2.0]] * 4)
    graph = tf.function(lambda a: pipeline.affine_warp(tf.cast(a, tf.float32), affine))
    xla = tf.function(lambda a: pipeline.affine_warp(tf.cast(a, tf.float32), affine),
                      jit_compile=True)
    np.testing.assert_allclose(xla(x).numpy(), graph(x).numpy(), atol=1e-3)
    seed = tf.constant([3, 4], tf.int64)
    out = tf.function(lambda a: pipeline.augment_batch(a, seed, xla=True), jit_compile=True)(x)
    assert out.dtype == tf.float32 and out.shape == x.shape
    with pytest.raises(tf.errors.InvalidArgumentError, match="ImageProjectiveTransformV3"):
        tf.function(lambda a: pipeline.augment_batch(a, seed), jit_compile=True)(x)


def test_with_augment_is_flat_and_trains_the_original_model():
    """The wrapped model is one flat functional model (Grad-CAM tools need that) whose layers
    are the original's: training it trains the model that gets saved, without the layer."""
    import tensorflow as tf

    from skinlib.models.cnn import build_cnn

    model = build_cnn((24, 32), 3, arch="gap1")
    wrapped = pipeline.with_augment(model, seed=5)
    assert isinstance(wrapped.layers[1], pipeline.Augment)
    assert all(a is b for a, b in zip(wrapped.layers[2:], model.layers[1:]))
    x = np.random.default_rng(2).integers(0, 256, (8, 24, 32, 3)).astype("uint8")
    np.testing.assert_allclose(wrapped.predict(x, verbose=0),
                               model.predict(x.astype("float32"), verbose=0), rtol=1e-5)
    wrapped.compile(optimizer="adam", loss="sparse_categorical_crossentropy", jit_compile=True)
    before = model.get_weights()[0].copy()
    wrapped.fit(tf.data.Dataset.from_tensors((x, np.arange(8) % 3)).repeat(2), verbose=0)
    assert not np.allclose(before, model.get_weights()[0])
    from skinlib.models.fusion import build_fusion

    fusion = build_fusion((24, 32), 5, 3, arch="gap1")  # {"image", "meta"}: only the image
    both = pipeline.with_augment(fusion, seed=1)
    meta = np.ones((8, 5), "float32")
    np.testing.assert_allclose(both.predict({"image": x, "meta": meta}, verbose=0), fusion.predict(
        {"image": x.astype("float32"), "meta": meta}, verbose=0), rtol=1e-5)
    with pytest.raises(ValueError, match="which input is the image"):
        import keras
        a, b = keras.Input((4, 4, 3), name="left"), keras.Input((4, 4, 3), name="right")
        pipeline.with_augment(keras.Model([a, b], keras.layers.Add()([a, b])))


STRATEGY_SCRIPT = """
import json, sys
import keras
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from skinlib import pipeline, session
from skinlib.training import fit
from skinlib.training.cnn import train_cnn
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
fit.get_strategy = lambda: strategy  # what a two-GPU machine gets
s = session.start("smoke", sys.argv[1], sys.argv[2], {"augment_on": "model", "epochs": 2},
                  quiet=True)
inputs = fit.training_inputs(s.frame("train"), s.profile, n_classes=s.n_classes,
                             val_frame=s.frame("val"))
model, record = train_cnn(s, "two_devices")
saved = keras.models.load_model(s.run.models / "two_devices.keras")
print(json.dumps({"replicas": model.distribute_strategy.num_replicas_in_sync,
                  "batch_dtype": inputs.train_ds.element_spec[0].dtype.name,
                  "augment_seed": inputs.augment_seed, "loss": record["history"]["loss"],
                  "saved_layers": [type(layer).__name__ for layer in saved.layers]}))
"""


def test_trainer_uses_uint8_batches_and_a_two_device_strategy(fake_root, tmp_path):
    """The GPU path on the CPU: the CNN trainer under MirroredStrategy over two logical
    devices, uint8 batches, augmentation inside the trained model, the saved model without it
    (a subprocess: logical devices are set once per process)."""
    import json
    import os
    import subprocess
    import sys

    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run([sys.executable, "-c", STRATEGY_SCRIPT, str(fake_root),
                           str(tmp_path / "run")], capture_output=True, text=True, env=env,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["replicas"] == 2 and out["batch_dtype"] == "uint8" and out["augment_seed"] == 42
    assert len(out["loss"]) == 2 and all(np.isfinite(out["loss"]))
    assert out["saved_layers"][1] == "Rescaling" and "Augment" not in out["saved_layers"]


def test_predictions_read_the_cache_training_filled(catalog, tmp_path, decodes, monkeypatch):
    import keras

    from skinlib.training.fit import predict_probs

    monkeypatch.setenv("SKINLIB_CACHE_DIR", str(tmp_path))
    frame = catalog.iloc[:20]
    _images(pipeline.make_dataset(frame, image_size=(24, 32), batch_size=8))
    inputs = keras.Input((24, 32, 3))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(
        keras.layers.GlobalAveragePooling2D()(inputs)))
    traced = []
    real = pipeline.decode_resize
    monkeypatch.setattr(pipeline, "decode_resize",
                        lambda *a, **k: traced.append(1) or real(*a, **k))
    probs = predict_probs(model, frame.iloc[::-1], (24, 32))
    assert decodes == [20] and not traced and probs.shape == (20, 3)  # no second decode
