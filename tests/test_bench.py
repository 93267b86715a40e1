"""bench pipeline / bench train on tiny synthetic data: well-formed JSON (timings not asserted)."""

import json

import pytest

from skinlib import bench, cli


def _check_stage(r):
    assert "error" not in r, r
    assert r["images_per_s"] > 0 and r["peak_rss_mb"] > 0 and r["rss_increase_mb"] >= 0


def test_bench_pipeline_cli_one_size(fake_root, tmp_path):
    out = tmp_path / "bench.json"
    code = cli.main(["bench", "pipeline", "--data", str(fake_root), "--size", "32",
                     "--limit", "40", "--epochs", "2", "--json", str(out)])
    assert code == 0
    report = json.loads(out.read_text())
    assert report["size"] == 32 and report["image_size"] == [24, 32] and report["n_images"] == 40
    assert set(report["results"]) == set(bench.STAGES)
    for name in bench.STAGES:
        _check_stage(report["results"][name])
    assert report["results"]["skinlib_warm"]["n_images"] == 40  # epochs - 1 warm epochs
    assert report["results"]["imagedatagenerator"]["n_images"] == 40
    assert all(v > 0 for v in report["ratios"].values())
    assert report["machine"]["cpus"] >= 1


def test_bench_pipeline_several_sizes_is_a_list(fake_root):
    report = bench.bench_pipeline(str(fake_root), (16, 24), limit=16, epochs=2)
    assert [r["size"] for r in report["runs"]] == [16, 24]
    assert [r["image_size"] for r in report["runs"]] == [[12, 16], [18, 24]]
    assert "skinlib_warm / decode_limit" in report["runs"][0]["ratios"]
    assert "imagedatagenerator" in bench.format_pipeline(report)


def test_bench_pipeline_bad_arguments(fake_root, capsys):
    assert cli.main(["bench", "pipeline", "--data", str(fake_root), "--limit", "0"]) == 2
    assert "--limit 0" in capsys.readouterr().err
    with pytest.raises(ValueError, match="warm"):
        bench.pipeline_run(None, (8, 8), epochs=1)


def test_failed_stage_is_reported_not_raised():
    assert bench._guard(lambda: 1 / 0)["error"].startswith("ZeroDivisionError")
    assert bench.ratios({"skinlib_warm": {"error": "x"}})["skinlib_warm / decode_limit"] is None


def test_bench_train_cnn_modes():
    report = bench.bench_train("smoke", steps=1, models=("cnn",), modes=("eager", "graph"))
    res = report["results"]["cnn"]
    assert res["image_size"] == [24, 32]
    for mode in ("eager", "graph"):
        assert "error" not in res[mode], res[mode]
        assert res[mode]["images_per_s"] > 0 and res[mode]["steps"] == 1
    assert report["mixed_precision"].startswith(("no GPU", "measured"))
    json.dumps(report)
    assert "cnn" in bench.format_train(report)


def test_train_rate_refuses_unknown_mode_and_model():
    with pytest.raises(ValueError, match="mode"):
        bench.train_rate("cnn", (8, 8), mode="fast", batch_size=1, steps=1)
    with pytest.raises(ValueError, match="cnn or resnet50"):
        bench._model("vgg", (8, 8), 7, "gap")


def test_augment_batch_is_flips_when_other_ranges_are_zero_and_seeded():
    import numpy as np
    import tensorflow as tf

    from skinlib.pipeline import augment_batch

    x = np.random.default_rng(0).integers(0, 256, (16, 6, 8, 3)).astype("uint8")
    seed = tf.constant([3, 4], tf.int64)
    out = augment_batch(tf.constant(x), seed, rotation=0, zoom=0, brightness=0,
                        contrast=0).numpy()
    assert out.dtype == np.float32
    for a, b in zip(x.astype("float32"), out):
        assert any(np.allclose(np.flip(a, axes) if axes else a, b, atol=1e-3)
                   for axes in ((), (0,), (1,), (0, 1)))
    full = augment_batch(tf.constant(x), seed).numpy()
    np.testing.assert_array_equal(full, augment_batch(tf.constant(x), seed).numpy())
    assert full.min() >= 0 and full.max() <= 255


def test_missing_imagedatagenerator_is_a_clear_error(monkeypatch):
    import pandas as pd
    import tensorflow as tf

    monkeypatch.delattr(tf.keras.preprocessing.image, "ImageDataGenerator")
    frame = pd.DataFrame({"path": ["a.jpg"], "dx": ["nv"]})
    with pytest.raises(ImportError, match="ImageDataGenerator, the seed work's loader"):
        bench.imagedatagenerator_batches(frame, (16, 16))
