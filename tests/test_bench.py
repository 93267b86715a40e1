"""bench pipeline / bench train on tiny synthetic data: well-formed JSON (timings not asserted)."""

import json

import pytest

from skinlib import bench, cli


def _check_stage(r):
    assert "error" not in r, r
    assert r["images_per_s"] > 0 and r["peak_rss_mb"] > 0 and r["rss_increase_mb"] >= 0
    lo, hi = r["images_per_s_range"]
    assert lo <= r["images_per_s"] <= hi and r["build_s"] >= 0 and r["work"]


def test_bench_pipeline_cli_one_size(fake_root, tmp_path):
    out = tmp_path / "bench.json"
    code = cli.main(["bench", "pipeline", "--data", str(fake_root), "--size", "32",
                     "--limit", "40", "--epochs", "3", "--json", str(out)])
    assert code == 0
    report = json.loads(out.read_text())
    assert report["size"] == 32 and report["image_size"] == [24, 32] and report["n_images"] == 40
    assert set(report["results"]) == set(bench.STAGES) >= {
        "imagedatagenerator", "naive_tfdata", "skinlib_cold", "skinlib_warm", "decode_limit",
        "read_limit"}  # DESIGN.md's names
    for name in bench.STAGES:
        _check_stage(report["results"][name])
        assert report["results"][name]["n_images"] == 40  # one epoch, every way
        assert report["results"][name]["repeats"] == 3
    assert all(v > 0 for v in report["ratios"].values())
    assert report["machine"]["cpus"] >= 1


def test_bench_pipeline_several_sizes_is_a_list(fake_root):
    report = bench.bench_pipeline(str(fake_root), (16, 24), limit=16, epochs=1)
    assert [r["size"] for r in report["runs"]] == [16, 24]
    assert [r["image_size"] for r in report["runs"]] == [[12, 16], [18, 24]]
    assert "skinlib_cold / decode_limit" in report["runs"][0]["ratios"]
    table = bench.format_pipeline(report)
    assert "imagedatagenerator" in table and "cache read alone" in table


def test_bench_pipeline_bad_arguments(fake_root, capsys):
    assert cli.main(["bench", "pipeline", "--data", str(fake_root), "--limit", "0"]) == 2
    assert "--limit 0" in capsys.readouterr().err
    with pytest.raises(ValueError, match="at least 1 epoch"):
        bench.pipeline_run(None, (8, 8), epochs=0)


def test_summary_is_the_median_and_range_of_repeats():
    parts = [{"images_per_s": v, "seconds": 10 / v, "build_s": 0.1, "n_images": 10,
              "peak_rss_mb": m, "rss_increase_mb": 1.0} for v, m in ((5, 300), (9, 100), (7, 200))]
    s = bench._summary(parts, "work")
    assert s["images_per_s"] == 7 and s["images_per_s_range"] == [5, 9] and s["repeats"] == 3
    assert s["peak_rss_mb"] == 300 and s["seconds"] == pytest.approx(10 / 7, abs=1e-3)


def test_failed_stage_is_reported_not_raised():
    assert bench._guard(lambda: 1 / 0)["error"].startswith("ZeroDivisionError")
    assert bench.ratios({"skinlib_warm": {"error": "x"}})["skinlib_warm / read_limit"] is None
    assert bench._share({"images_per_s": 100.0}, {"images_per_s": 80.0}) == 0.2
    assert bench._share({"images_per_s": 100.0}, {"images_per_s": 120.0}) == 0.0
    assert bench._share({"error": "x"}, {"images_per_s": 80.0}) is None
    # several runs: the fastest of each (a half-speed spell of the machine moves neither)
    assert bench._share({"images_per_s": 95.0, "images_per_s_range": [94.0, 200.0]},
                        {"images_per_s": 180.0, "images_per_s_range": [93.0, 190.0]}) == 0.05


def test_bench_train_cnn_and_the_input_share():
    report = bench.bench_train("smoke", steps=1, models=("cnn",), modes=("graph",),
                               precisions=("float32",), repeats=2)
    res = report["results"]
    assert set(res) == {"cnn_gap", "cnn_gap1"} and report["precisions"] == ["float32"]
    for r in res.values():
        assert r["image_size"] == [24, 32] and r["batch_size"] == 32
        for run in ("float32_graph", "memory", "pipeline", "pipeline_uint8_model_augment"):
            assert "error" not in r[run], (run, r[run])
            assert r[run]["images_per_s"] > 0 and r[run]["steps"] == 1
            lo, hi = r[run]["images_per_s_range"]
            assert r[run]["repeats"] == 2 and lo <= r[run]["images_per_s"] <= hi
        assert r["input_bound_share"] == bench._share(r["memory"], r["pipeline"])
    json.dumps(report)
    assert "input_bound_share" in bench.format_train(report)


def test_train_rate_with_steps_per_execution():
    from skinlib.models.cnn import build_cnn

    data = bench.memory_batches((24, 32), 8)
    r = bench.train_rate(lambda: build_cnn((24, 32), 7, arch="gap1"), data, mode="graph",
                         steps=4, batch_size=8, steps_per_execution=2)
    assert r["images_per_s"] > 0 and r["steps"] == 4


@pytest.mark.slow
def test_bench_train_every_model_in_both_precisions():
    report = bench.bench_train("smoke", steps=1, modes=("graph",))
    res = report["results"]
    assert set(res) == {"cnn_gap", "cnn_gap1", "dcgan", "experts", "resnet50"}
    assert res["dcgan"]["image_size"] == [32, 32] and res["dcgan"]["batch_size"] == 16
    assert res["resnet50"]["image_size"] == [32, 32] and "pipeline" not in res["dcgan"]
    assert report["precisions"][0] == "float32" and report["precisions"][1].startswith("mixed")
    for name, r in res.items():
        runs = [f"{p}_graph" for p in report["precisions"]]
        # the DCGAN step concatenates float32 real and bfloat16 fake images: float32 only
        for run in runs if name != "dcgan" else runs[:1]:
            assert "error" not in r[run], (name, run, r[run])
        if name != "dcgan":
            assert 0 <= r["input_bound_share"] < 1 and "error" not in r["pipeline"]


def test_train_rate_refuses_unknown_mode_and_model():
    from skinlib.config import get_profile

    with pytest.raises(ValueError, match="mode"):
        bench.train_rate(lambda: None, None, mode="fast", batch_size=1, steps=1)
    with pytest.raises(ValueError, match="use one of"):
        bench._builder("vgg", get_profile("smoke"), 7)


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


@pytest.mark.slow
def test_cli_bench_train_times_the_models_and_architectures_asked_for(tmp_path):
    from skinlib import cli

    out = tmp_path / "train.json"
    assert cli.main(["bench", "train", "--profile", "smoke", "--steps", "1", "--model", "cnn",
                     "--arch", "narrow", "--arch", "seed", "--repeats", "1", "--mode", "graph",
                     "--precision", "float32", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert list(report["results"]) == ["cnn_narrow", "cnn_seed"] and report["repeats"] == 1
    assert report["precisions"] == ["float32"]
    assert {k for k in report["results"]["cnn_seed"] if k.startswith("float32_")} == {
        "float32_graph"}
    assert all("error" not in r["float32_graph"] for r in report["results"].values())
