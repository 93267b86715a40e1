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
