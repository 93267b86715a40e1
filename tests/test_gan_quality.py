"""KID, the copy check, the GAN-class recall comparison, and GAN rows kept out of evaluation."""

from __future__ import annotations

import numpy as np
import pytest

from skinlib import gan_quality


def _features(n=120, d=16, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d))


def test_kid_of_a_set_against_itself_is_about_zero_and_a_shift_is_not():
    x, y = _features(seed=0), _features(seed=1)
    itself = gan_quality.kid(x, x, n_bootstrap=200, seed=0)
    same = gan_quality.kid(x, y, n_bootstrap=200)
    shifted = gan_quality.kid(x, y + 1.0, n_bootstrap=200)
    assert itself["kid_std"] >= 0 and itself["n_x"] == itself["n_y"] == 120
    assert abs(itself["kid"]) < 0.05 * shifted["kid"]
    assert same["ci95"][0] <= 0 <= same["ci95"][1]  # unbiased: 0 within its interval
    assert shifted["ci95"][0] > 0.5 * shifted["kid"] and shifted["kid"] > 1.0
    assert same["bootstrap"] == {"unit": "image", "n": 200, "n_units": 240, "seed": 0}


def test_mmd2_is_the_unbiased_estimator_written_out():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(5, 3)), rng.normal(size=(4, 3))

    def k(a, b):
        return (a @ b / 3 + 1) ** 3

    xx = np.mean([k(x[i], x[j]) for i in range(5) for j in range(5) if i != j])
    yy = np.mean([k(y[i], y[j]) for i in range(4) for j in range(4) if i != j])
    xy = np.mean([k(a, b) for a in x for b in y])
    assert gan_quality.mmd2_unbiased(x, y) == pytest.approx(xx + yy - 2 * xy)


@pytest.mark.parametrize("shift, min_coverage", [(0.0, 0.93), (0.4, 0.88)])
def test_kid_interval_covers_the_truth_with_a_small_real_set(shift, min_coverage):
    """100 draws of 100 generated and 20 real images: the bootstrap over both sets covers the
    true KID (the old spread over subsets, when the subset is the whole real set: 73% at 0.4)."""
    rng = np.random.default_rng(0)
    truth = gan_quality.mmd2_unbiased(rng.normal(size=(4000, 8)),
                                      rng.normal(shift, 1, size=(4000, 8))) if shift else 0.0
    covered = 0
    for r in range(100):
        k = gan_quality.kid(rng.normal(size=(100, 8)), rng.normal(shift, 1, size=(20, 8)),
                            n_bootstrap=300, seed=r)
        covered += k["ci95"][0] <= truth <= k["ci95"][1]
        assert k["too_small"] is False and k["min_real"] == gan_quality.MIN_REAL
    assert covered / 100 >= min_coverage, covered


def test_kid_against_floor_and_too_small_classes():
    rng = np.random.default_rng(4)
    train, real = rng.normal(size=(80, 6)), rng.normal(size=(30, 6))
    good, bad = rng.normal(size=(80, 6)), rng.normal(1.0, 1, size=(80, 6))
    lesions = np.repeat(np.arange(15), 2)
    k_good = gan_quality.kid_against_floor(good, train, real, groups_real=lesions,
                                           n_bootstrap=300)
    k_bad = gan_quality.kid_against_floor(bad, train, real, groups_real=lesions, n_bootstrap=300)
    assert k_bad["excess"] == pytest.approx(k_bad["kid"] - k_bad["floor"])
    assert k_bad["floor"] == k_good["floor"] == pytest.approx(
        gan_quality.mmd2_unbiased(train, real))
    assert k_bad["excess_ci95"][0] > 0 and "further from the real" in gan_quality.kid_verdict(
        k_bad)
    assert "not distinguishable" in gan_quality.kid_verdict(k_good)
    assert k_good["bootstrap"]["unit"] == "lesion" and k_good["bootstrap"]["n_units"] == 175
    small = gan_quality.kid_against_floor(good, train, real[:12], n_bootstrap=50, min_real=20)
    assert small["too_small"] and "too few real held-out images" in gan_quality.kid_verdict(
        small)


def test_kid_refuses_mismatched_features():
    with pytest.raises(ValueError, match="equal width"):
        gan_quality.kid(_features(d=4), _features(d=5))


def test_nearest_neighbours_and_copy_check():
    rng = np.random.default_rng(0)
    train = rng.integers(0, 255, (20, 8, 8, 3)).astype(np.uint8)
    idx, dist = gan_quality.nearest_neighbours(train[[3, 7]], train)
    assert list(idx) == [3, 7] and np.allclose(dist, 0, atol=1e-2)
    val = rng.integers(0, 255, (10, 8, 8, 3)).astype(np.uint8)
    copied = gan_quality.copy_check(train[:5], train, val)
    fresh = gan_quality.copy_check(rng.integers(0, 255, (5, 8, 8, 3)), train, val)
    assert copied["nn_ratio"] < 0.1 < fresh["nn_ratio"]
    block = gan_quality.neighbour_block(train, train[[7, 3, 5]], n=2)
    assert block["real"].shape == block["generated"].shape == block["nearest"].shape == (
        2, 8, 8, 3)
    np.testing.assert_array_equal(block["nearest"], train[[7, 3]])  # each one's own copy
    np.testing.assert_allclose(block["distances"], 0, atol=1e-2)


def test_gan_class_recall_difference_is_metrics_compare_on_a_subset():
    """Notebook 04's GAN-class recall: ``metrics.compare(subset=)`` on one-hot predictions."""
    from skinlib import metrics

    classes = ["a", "b", "c"]
    y = np.array([0, 0, 1, 1, 2, 2] * 10)
    pred_a = np.array([0, 0, 0, 0, 0, 0] * 10)  # recall a=1, b=0, c=0
    pred_b = y.copy()  # perfect
    eye = np.eye(len(classes))
    comp = metrics.compare(y, eye[pred_a], eye[pred_b], classes, n_bootstrap=50, seed=0,
                           subset=["b", "c"])
    res = comp["subset_recall"]
    assert res["a"] == 0.0 and res["b"] == 1.0 and res["diff"] == 1.0
    assert res["significant"] and res["classes"] == ["b", "c"]


@pytest.fixture
def smoke_session(fake_root, tmp_path):
    from skinlib import session

    return session.start("smoke", str(fake_root), str(tmp_path / "run"), quiet=True)


def test_gan_rows_join_training_only(smoke_session):
    from skinlib import gan, pipeline
    from skinlib.models import dcgan

    s = smoke_session
    dcgan.build_generator(16, 8, 16).save(gan.gan_dir(s.run, "df").mkdir(parents=True)
                                          or gan.gan_dir(s.run, "df") / "generator.keras")
    n_real = int((s.frame("train")["dx"] == "df").sum())
    frame, added = gan.augment_frame(s, target_count=n_real + 5, classes=["df"])
    fake = frame[frame["synthetic"]]
    assert added == {"df": 5} and len(fake) == 5
    assert set(fake["split"]) == {"train"} and set(fake["dx"]) == {"df"}
    assert list(fake["lesion_id"]) == [f"gan_df_{i}" for i in range(5)]
    assert all(s.run.inside("synthetic_images", "df") in __import__("pathlib").Path(p).parents
               for p in fake["path"])
    assert not frame[~frame["synthetic"]]["image_id"].str.startswith("gan_").any()
    ds = pipeline.make_dataset(frame, image_size=(8, 8), batch_size=64, training=True,
                               augment=False)
    assert sum(int(y.shape[0]) for _, y in ds) == len(frame)
    with pytest.raises(ValueError, match="synthetic images may only be used for training"):
        pipeline.make_dataset(frame, image_size=(8, 8), batch_size=8, training=False)
    with pytest.raises(ValueError, match="outside the training split"):
        gan.augment_frame(s, 10, ["df"], train_frame=s.frame("trainval"))
    for split in ("val", "test"):
        assert not s.frame(split)["image_id"].str.startswith("gan_").any()


def test_kid_sd_of_a_tiny_class_ignores_undefined_resamples():
    """Three real images: some lesion resamples leave one image, whose unbiased MMD is
    undefined; the SD comes from the finite resamples and is a number, not None."""
    from skinlib.gan_quality import _finite_sd

    assert _finite_sd(np.array([1.0, np.inf, 2.0, np.nan])) == pytest.approx(np.std([1, 2], ddof=1))
    assert _finite_sd(np.array([np.inf, 3.0])) is None
