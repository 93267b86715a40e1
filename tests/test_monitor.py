"""Drift monitoring: the MMD and its permutation test, the other tests and the Bonferroni
verdict, image statistics and corruptions, the input check, and ``python -m skinlib monitor``."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from skinlib import monitor
from skinlib.card import ModelCard
from skinlib.cli import main

CLASSES = ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]


def _mmd2_by_definition(k, in_x):
    """Unbiased MMD^2 written as the three double sums of Gretton et al. (2012)."""
    x, y = np.flatnonzero(in_x), np.flatnonzero(~in_x)
    sxx = sum(k[i, j] for i in x for j in x if i != j) / (len(x) * (len(x) - 1))
    syy = sum(k[i, j] for i in y for j in y if i != j) / (len(y) * (len(y) - 1))
    sxy = sum(k[i, j] for i in x for j in y) / (len(x) * len(y))
    return sxx + syy - 2 * sxy


def test_mmd2_unbiased_equals_its_definition_for_many_splits_at_once():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(23, 4))
    k, sigma = monitor.rbf_kernel(z)
    d = np.sqrt(((z[:, None] - z[None]) ** 2).sum(-1))
    assert sigma == pytest.approx(np.median(d[np.triu_indices(23, 1)]))
    assert np.allclose(k, np.exp(-d ** 2 / (2 * sigma ** 2)))
    splits = np.stack([rng.permutation(np.arange(23) < m) for m in (5, 11, 17)], axis=1)
    got = monitor.mmd2_unbiased(k, splits)
    want = [_mmd2_by_definition(k, splits[:, j]) for j in range(3)]
    assert np.allclose(got, want, rtol=1e-10, atol=1e-12)


def test_mmd_test_holds_its_level_and_finds_a_shift():
    rng = np.random.default_rng(1)
    p_same = [monitor.mmd_test(rng.normal(size=(40, 5)), rng.normal(size=(30, 5)), n_perm=200,
                               seed=s)["p_value"] for s in range(30)]
    assert np.mean(np.asarray(p_same) < 0.05) <= 0.15 and np.median(p_same) > 0.2
    shifted = monitor.mmd_test(rng.normal(size=(40, 5)), rng.normal(0.8, 1, size=(30, 5)),
                               n_perm=500, seed=0)
    assert shifted["p_value"] == pytest.approx(1 / 501) and shifted["statistic"] > 0.05


def test_input_statistics_alone_never_decide():
    tests = {"brightness": {"p_value": 1e-9}, "embedding_mmd": {"p_value": 0.2},
             "class_mix": {"p_value": 0.3}, "confidence": {"p_value": 0.5},
             "entropy": {"p_value": 0.5}}
    v = monitor.verdict(tests, alpha=0.05)
    assert v["drift"] is False and v["p_value"] == pytest.approx(0.8)
    assert tests["brightness"]["significant"] and not tests["brightness"]["in_verdict"]
    assert v["input_change"] == ["brightness"]
    tests["confidence"]["p_value"] = 0.001
    assert monitor.verdict(tests, alpha=0.05)["drift"] is True


def test_verdict_is_bonferroni():
    tests = {"a": {"p_value": 0.004}, "b": {"p_value": 0.5}, "c": {"p_value": 0.02}}
    v = monitor.verdict(tests, alpha=0.05)
    assert v["p_value"] == pytest.approx(0.012) and v["drift"] is True
    assert [t["significant"] for t in tests.values()] == [True, False, False]
    assert monitor.verdict({"a": {"p_value": 0.02}, "b": {"p_value": 0.9}}, 0.03)["drift"] is False
    assert monitor.verdict({"a": {"p_value": 0.6}, "b": {"p_value": 0.9}})["p_value"] == 1.0


def test_class_mix_test_is_scipys_chi_square_on_the_decided_classes():
    from scipy.stats import chi2_contingency

    ref, batch = np.repeat([0, 5, 4], [10, 60, 30]), np.repeat([0, 5, 4], [30, 40, 30])
    res = monitor.class_mix_test(ref, batch, 7)
    stat, p = chi2_contingency(np.array([[10, 30, 60], [30, 30, 40]]))[:2]
    assert res["statistic"] == pytest.approx(stat) and res["p_value"] == pytest.approx(p)
    assert res["batch_mix"][0] == pytest.approx(0.3) and res["reference_mix"][3] == 0
    assert monitor.class_mix_test([5] * 9, [5] * 4, 7)["p_value"] == 1.0


def test_image_stats_by_their_definitions():
    names = monitor.STATS
    flat = monitor.image_stats(np.full((450, 600, 3), (255, 0, 0), np.uint8))
    assert flat[names.index("brightness")] == pytest.approx(0.299, abs=1e-3)
    assert flat[names.index("contrast")] < 1e-6 and flat[names.index("sharpness")] < 1e-6
    assert flat[names.index("saturation")] == pytest.approx(1) and flat[names.index("red")] == 1
    assert flat[names.index("size")] == pytest.approx(0.27)
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (150, 200, 3), dtype=np.uint8)
    blurred = monitor.corrupt(img, "blur", 2.0)
    s, b = monitor.image_stats(img), monitor.image_stats(blurred)
    assert b[names.index("sharpness")] < 0.3 * s[names.index("sharpness")]
    bright = monitor.image_stats(monitor.corrupt(img, "brightness", 0.2))
    assert bright[0] > s[0] + 0.1
    cast = monitor.image_stats(monitor.corrupt(img, "colour_cast", 0.2))
    assert cast[names.index("red")] > s[names.index("red")] > cast[names.index("blue")]
    jpeg = monitor.corrupt(img, "jpeg", 10)
    assert jpeg.shape == img.shape and np.abs(jpeg.astype(int) - img).mean() > 10
    with pytest.raises(ValueError, match="corruption 'fog'"):
        monitor.corrupt(img, "fog", 1)


def test_input_check_threshold_keeps_reference_false_alarms_at_target():
    rng = np.random.default_rng(0)
    emb, stats = rng.normal(size=(300, 16)), rng.normal(0.5, 0.1, size=(300, len(monitor.STATS)))
    check = monitor.InputCheck(emb, stats, target=0.03)
    assert check.false_alarm_reference <= 0.03
    new = check.score(rng.normal(size=(400, 16)), rng.normal(0.5, 0.1, (400, len(monitor.STATS))))
    assert new["flagged"].mean() <= 0.08 and ((new["score"] >= 0) & (new["score"] <= 100)).all()
    far = check.score(np.full((1, 16), 6.0), stats[:1])
    odd = check.score(emb[:1], np.full((1, len(monitor.STATS)), 3.0))
    assert far["flagged"][0] and far["embedding"][0] == 100 and odd["flagged"][0]


def _features(rng, n, shift=0.0):
    probs = rng.dirichlet(np.ones(7) * 0.5, size=n)
    return monitor.Features([f"i{k}" for k in range(n)], rng.normal(shift, 1, size=(n, 8)),
                            probs, rng.normal(0.5 + shift / 10, 0.1, size=(n, len(monitor.STATS))))


def test_compare_reports_every_test_and_the_verdict():
    rng = np.random.default_rng(3)
    card = ModelCard(classes=CLASSES, training_priors=[1 / 7] * 7)
    ref = _features(rng, 150)
    same = monitor.compare(ref, _features(rng, 60), card, n_perm=300, seed=1, max_reference=100)
    assert set(same["tests"]) == {"embedding_mmd", *monitor.STATS, "class_mix", "confidence",
                                  "entropy"}
    assert same["n_reference"] == 100 and same["n_images"] == 60 and same["n_skipped"] == 0
    assert same["drift"] is False and same["correction"].startswith(
        "Bonferroni over 4 tests (embedding_mmd, class_mix, confidence, entropy)")
    moved = monitor.compare(ref, _features(rng, 60, shift=1.0), card, n_perm=300, seed=1)
    assert moved["drift"] is True and moved["tests"]["embedding_mmd"]["significant"]
    deciding = [t["p_value"] for n, t in moved["tests"].items() if n in monitor.VERDICT_TESTS]
    assert moved["p_value"] == pytest.approx(min(1, 4 * min(deciding)))
    assert {n for n, t in moved["tests"].items() if t["in_verdict"]} == set(
        monitor.VERDICT_TESTS)
    with pytest.raises(ValueError, match="at least 10"):
        monitor.compare(ref, _features(rng, 5), card)


# --- python -m skinlib monitor on a tiny trained model ----------------------------------------

@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from tiny_run import make_tiny_run

    return make_tiny_run(tmp_path_factory.mktemp("tiny_monitor"))


def _monitor(tiny, folder, tmp_path, capsys):
    out = tmp_path / f"{folder.name}.json"
    rc = main(["monitor", "--model", str(tiny.run.models / "02_tiny.keras"), "--reference",
               str(tiny.run.root), "--data", str(folder), "--json", str(out),
               "--permutations", "500"])
    text = capsys.readouterr()
    return rc, (json.loads(out.read_text()) if out.exists() else None), text


def test_monitor_command_in_distribution_and_shifted(tiny, tmp_path, capsys):
    same, cast = tmp_path / "same", tmp_path / "cast"
    same.mkdir(), cast.mkdir()
    for p in tiny.frame("test")["path"]:
        shutil.copy(p, same)
        img = np.asarray(Image.open(p).convert("RGB"))
        Image.fromarray(monitor.corrupt(img, "colour_cast", 0.3)).save(cast / f"{p.split('/')[-1]}")
    (cast / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    rc, rep, text = _monitor(tiny, same, tmp_path, capsys)
    assert rc == 0 and rep["drift"] is False and rep["n_images"] == len(tiny.frame("test"))
    assert {"drift", "p_value", "n_images", "n_skipped", "tests"} <= set(rep)
    assert "no drift detected" in text.out
    assert (tiny.run.root / "monitor" / "same" / "drift.png").exists()
    rc, rep, text = _monitor(tiny, cast, tmp_path, capsys)
    assert rc == 0 and rep["drift"] is True and rep["p_value"] < 0.01
    assert rep["n_skipped"] == 1 and rep["skipped"][0]["path"].endswith("broken.jpg")
    assert "DRIFT" in text.out and "broken.jpg" in text.out
    # another batch folder of the same name keeps the first report and gets its own
    other = tmp_path / "elsewhere" / "same"
    shutil.copytree(cast, other)
    first = (tiny.run.root / "monitor" / "same" / "report.json").read_text()
    rc, rep, text = _monitor(tiny, other, tmp_path / "elsewhere", capsys)
    assert rc == 0 and rep["drift"] is True
    assert (tiny.run.root / "monitor" / "same" / "report.json").read_text() == first
    assert (tiny.run.root / "monitor" / f"same-{monitor.data_key(other)}" / "drift.png").exists()


def test_monitor_command_unusable_input_exits_2(tiny, tmp_path, capsys):
    empty, few = tmp_path / "empty", tmp_path / "few"
    empty.mkdir(), few.mkdir()
    for p in tiny.frame("test")["path"][:4]:
        shutil.copy(p, few)
    for folder, words in ((empty, "no JPEG/PNG image"), (few, "need at least 10"),
                          (tmp_path / "nowhere", "no such folder")):
        rc, rep, text = _monitor(tiny, folder, tmp_path, capsys)
        assert rc == 2 and rep is None and words in text.err, text.err
    rc = main(["monitor", "--model", str(tiny.run.models / "02_tiny.keras"), "--reference",
               str(tmp_path), "--data", str(few)])
    assert rc == 2 and "not a skinlib run folder" in capsys.readouterr().err


def test_reference_without_a_card_comes_from_the_runs_validation_split(tiny, tmp_path):
    from skinlib.predict import Predictor
    from skinlib.rundir import read_card

    bare = tiny.run.models / "bare_copy.keras"
    shutil.copy(tiny.run.models / "02_tiny.keras", bare)
    try:
        predictor = Predictor(bare)
        assert not predictor.card.known and predictor.card.check is None
        computed = monitor.reference_features(predictor, tiny.run.root)
    finally:
        bare.unlink()
    _, saved = read_card(tiny.run.models / "02_tiny.keras")
    assert [p.split("/")[-1] for p in computed.paths] == list(saved["path"])
    assert np.allclose(computed.embeddings, saved["embeddings"], atol=1e-5)
    assert np.allclose(computed.stats, saved["stats"])
