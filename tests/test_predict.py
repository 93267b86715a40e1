"""``python -m skinlib predict``: the model as it was tested (card: rule, temperature, input
check), files and folders, CSV, Grad-CAM overlays, bad input, and the upload cell's logic."""

from __future__ import annotations

import io
import json
import pickle
import shutil

import numpy as np
import pandas as pd
import pytest

keras = pytest.importorskip("keras")
from PIL import Image, ImageDraw  # noqa: E402
from tiny_run import NAME, make_tiny_run  # noqa: E402

from skinlib import decision, ensemble, metrics, predict  # noqa: E402
from skinlib.cli import main  # noqa: E402
from skinlib.models.cnn import build_cnn  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny run's session; its model is ``models/02_tiny.keras`` with a card."""
    return make_tiny_run(tmp_path_factory.mktemp("tiny_run"))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("predict")
    model = build_cnn((48, 64), 7, arch="gap")
    model.save(d / "cnn.keras")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (450, 600, 3), dtype=np.uint8)).save(d / "big.jpg")
    Image.fromarray(rng.integers(0, 255, (29, 37), dtype=np.uint8)).save(d / "gray.png")
    Image.fromarray(rng.integers(0, 255, (40, 30, 4), dtype=np.uint8), "RGBA").save(d / "a.png")
    (d / "garbage.jpg").write_bytes(b"not an image at all")
    (d / "empty.png").write_bytes(b"")
    return d


def _model(s):
    return s.run.models / f"{NAME}.keras"


def _csv_run(capsys, model, paths, csv, *extra):
    rc = main(["predict", "--model", str(model), "--csv", str(csv), *extra, *map(str, paths)])
    out = capsys.readouterr()
    assert rc == 0, out.err
    return pd.read_csv(csv), out


def _copy_with_card(s, tmp_path, **changes):
    """The tiny model and its card copied to ``tmp_path``, with card fields changed."""
    for suffix in (".keras", ".card.json", ".reference.npz"):
        shutil.copy(s.run.models / f"{NAME}{suffix}", tmp_path / f"m{suffix}")
    card = json.loads((tmp_path / "m.card.json").read_text())
    card.update(changes)
    (tmp_path / "m.card.json").write_text(json.dumps(card))
    return tmp_path / "m.keras"


def _ood_images(folder):
    """Flat colour fields and text renders."""
    folder.mkdir(exist_ok=True)
    for i, colour in enumerate([(200, 30, 30), (20, 20, 20), (240, 240, 240), (40, 160, 60)]):
        Image.new("RGB", (200, 150), colour).save(folder / f"flat{i}.jpg")
        im = Image.new("RGB", (200, 150), "white")
        for j in range(6):
            ImageDraw.Draw(im).text((6, 6 + 22 * j), f"lorem ipsum dolor {i} {j}", fill="black")
        im.save(folder / f"text{i}.png")
    return sorted(folder.iterdir())


# --- the model as it was tested ---------------------------------------------------------------

def test_csv_reproduces_the_evaluated_balanced_accuracy(tiny, tmp_path, capsys):
    test = tiny.frame("test")
    df, _ = _csv_run(capsys, _model(tiny), test["path"], tmp_path / "p.csv")
    assert list(df.columns) == ["path", "class", *tiny.classes, "input_score", "flagged"]
    assert df["path"].tolist() == test["path"].tolist()
    pred = df["class"].map(tiny.classes.index).to_numpy()
    facts = tiny.run.read_metrics(NAME)
    assert facts["decision"] == "prior_corrected"
    assert metrics.balanced_accuracy(test["label"], pred, 7) == facts["balanced_accuracy"]
    saved = tiny.run.load_test_probs(NAME, "02", test["image_id"])
    assert np.abs(df[tiny.classes].to_numpy() - saved).max() < 1e-5
    rule = decision.apply_decision(saved, "prior_corrected", priors=np.asarray(facts["priors"]))
    assert (pred == rule).all()


def test_card_records_rule_data_and_metrics(tiny):
    from skinlib.card import file_sha256
    from skinlib.session import catalog_hash

    card = json.loads((tiny.run.models / f"{NAME}.card.json").read_text())
    facts = tiny.run.read_metrics(NAME)
    assert card["decision"] == {"decision": facts["decision"], "priors": facts["priors"]}
    assert card["classes"] == tiny.classes and card["input_size"] == list(tiny.profile.image_size)
    assert card["model_sha256"] == file_sha256(_model(tiny)) and card["temperature"] is None
    assert card["training_data"]["catalog_sha256"] == catalog_hash(tiny.catalog)
    assert card["training_data"]["split_seed"] == tiny.profile.seed
    assert card["profile"] == "smoke"
    assert card["test_metrics"]["balanced_accuracy"] == facts["balanced_accuracy"]
    assert card["test_metrics"]["ci95"]["macro_auc"] == facts["ci95"]["macro_auc"]
    assert card["input_check"]["n_reference"] == len(tiny.frame("val"))


def test_out_of_domain_images_flagged_and_few_false_alarms(tiny, tmp_path, capsys):
    ood = _ood_images(tmp_path / "ood")
    df, out = _csv_run(capsys, _model(tiny), ood, tmp_path / "ood.csv")
    assert df["flagged"].all(), df
    assert f"{len(ood)} of {len(ood)} image(s) flagged" in out.out
    card = json.loads((tiny.run.models / f"{NAME}.card.json").read_text())
    assert card["input_check"]["false_alarm_reference"] <= 0.05  # validation, leave-one-out
    df, _ = _csv_run(capsys, _model(tiny), tiny.frame("test")["path"], tmp_path / "t.csv")
    assert df["flagged"].mean() <= 0.05  # held-out in-distribution images
    assert df["input_score"].between(0, 100).all()


def test_show_argmax_only_where_it_differs(tiny, tmp_path, capsys):
    paths = tiny.frame("test")["path"].tolist()[:12]
    plain = _copy_with_card(tiny, tmp_path, decision={"decision": "argmax"}, temperature=None)
    p = np.array([[r["probs"][c] for c in tiny.classes] for r in
                  predict.predict_files(plain, paths, progress=False)["results"]])
    ratio = np.median(p[:, 0] / p.max(axis=1))  # akiec's prior that flips about half the images
    tilted = [ratio] + [1.0] * 6
    model = _copy_with_card(tiny, tmp_path, decision={"decision": "prior_corrected",
                                                      "priors": tilted})
    df, out = _csv_run(capsys, model, paths, tmp_path / "a.csv", "--show-argmax")
    lines = [ln for ln in out.out.splitlines() if ln.startswith(tuple(paths))]
    argmax = np.asarray(tiny.classes)[df[tiny.classes].to_numpy().argmax(axis=1)]
    differs = argmax != df["class"].to_numpy()
    assert len(lines) == 12 and 0 < differs.sum() < 12  # both cases occur
    for line, diff, a in zip(lines, differs, argmax):
        assert ("(argmax " in line) == diff and (not diff or f"(argmax {a})" in line), line
    capsys.readouterr()
    main(["predict", "--model", str(model), *paths])
    assert "(argmax" not in capsys.readouterr().out


def test_temperature_calibrates_and_never_moves_a_decision(tiny, tmp_path, capsys):
    paths = tiny.frame("test")["path"]
    plain, _ = _csv_run(capsys, _model(tiny), paths, tmp_path / "plain.csv")
    model = _copy_with_card(tiny, tmp_path, temperature=3.0)
    hot, _ = _csv_run(capsys, model, paths, tmp_path / "hot.csv")
    raw = tiny.run.load_test_probs(NAME, "02", tiny.frame("test")["image_id"])
    want = ensemble.apply_temperature(raw, 3.0)
    assert np.abs(hot[tiny.classes].to_numpy() - want).max() < 1e-5
    assert (hot["class"] == plain["class"]).all()
    assert hot[tiny.classes].max(axis=1).mean() < plain[tiny.classes].max(axis=1).mean()


def test_model_without_card_warns_once_and_uses_argmax(tiny, tmp_path, capsys):
    shutil.copy(_model(tiny), tmp_path / "bare.keras")
    paths = tiny.frame("test")["path"]
    df, out = _csv_run(capsys, tmp_path / "bare.keras", paths, tmp_path / "b.csv")
    warning = [ln for ln in out.err.splitlines() if ln.startswith("warning:")]
    assert len(warning) == 1 and "rule is unknown" in warning[0] and "argmax" in warning[0]
    raw = tiny.run.load_test_probs(NAME, "02", tiny.frame("test")["image_id"])
    assert (df["class"].map(tiny.classes.index).to_numpy() == raw.argmax(axis=1)).all()
    assert df["input_score"].isna().all()


def test_folders_progress_and_unreadable_images_listed(tiny, files, tmp_path, capsys):
    folder = tmp_path / "mixed"
    (folder / "sub").mkdir(parents=True)
    for p in tiny.frame("test")["path"].tolist()[:23]:
        shutil.copy(p, folder / "sub")
    for bad in ("garbage.jpg", "empty.png"):
        shutil.copy(files / bad, folder / bad)
    df, out = _csv_run(capsys, _model(tiny), [folder], tmp_path / "f.csv")
    assert len(df) == 23 and "2 image(s) could not be read" in out.out
    assert "garbage.jpg: not a JPEG/PNG image" in out.out and "empty.png: empty file" in out.out
    assert "25/25" in out.err  # the progress bar, over more than 20 images


# --- images of any size, overlays, bad input --------------------------------------------------

def test_text_output_top3_and_input_size(files, capsys):
    rc = main(["predict", "--model", str(files / "cnn.keras"), str(files / "big.jpg"),
               str(files / "gray.png")])
    out = capsys.readouterr().out
    assert rc == 0
    assert "input 48x64" in out and "big.jpg (600x450)" in out and "gray.png (37x29)" in out
    line = next(ln for ln in out.splitlines() if "big.jpg" in ln)
    probs = [float(t.split()[-1]) for t in line.split(" | ")[1].split(", ")]
    assert len(probs) == 3 and probs == sorted(probs, reverse=True)


def test_json_and_gradcam_overlays_at_image_size(files, tmp_path, capsys):
    imgs = [files / "big.jpg", files / "gray.png", files / "a.png"]
    rc = main(["predict", "--model", str(files / "cnn.keras"), "--json", "--top", "7",
               "--gradcam", str(tmp_path / "cams"), *map(str, imgs)])
    assert rc == 0
    report = json.loads(capsys.readouterr().out)
    assert report["input_size"] == [48, 64] and report["dataset"] == "ham10000"
    assert len(report["results"]) == 3 and report["rule"] == "argmax"
    for r, img in zip(report["results"], imgs):
        assert abs(sum(t["prob"] for t in r["top"]) - 1) < 1e-3
        assert r["class"] == r["argmax"] == r["top"][0]["class"]
        with Image.open(img) as src, Image.open(r["overlay"]) as ov:
            assert ov.size == src.size and ov.mode == "RGB"


def test_jpeg_is_decoded_like_the_input_pipeline(files):
    import tensorflow as tf

    from skinlib.pipeline import decode_resize

    want = decode_resize(tf.constant(str(files / "big.jpg")), (48, 64)).numpy()
    got = predict.resize_for_model(predict.read_image(files / "big.jpg"), (48, 64))
    assert np.array_equal(got, want.astype(np.float32))


@pytest.mark.parametrize("bad", ["missing.jpg", "garbage.jpg", "empty.png"])
def test_bad_image_is_one_line_exit_2(files, capsys, bad):
    rc = main(["predict", "--model", str(files / "cnn.keras"), str(files / bad)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and bad in err and len(err.splitlines()) == 1
    assert "Traceback" not in err


def test_refuses_files_that_are_not_skinlib_models(files, tmp_path, capsys):
    pkl = tmp_path / "model.keras"
    pkl.write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    h5 = tmp_path / "model.h5"
    h5.write_bytes(b"\x89HDF\r\n\x1a\n")
    vec = keras.Sequential([keras.Input((10,)), keras.layers.Dense(7, activation="softmax")])
    vec.save(tmp_path / "vector.keras")
    five = build_cnn((32, 32), 5, arch="gap")
    five.save(tmp_path / "five.keras")
    cases = {pkl: "not a Keras .keras archive", h5: "not a Keras .keras archive",
             tmp_path / "vector.keras": "not a skinlib image classifier",
             tmp_path / "five.keras": "matches no dataset",
             tmp_path / "none.keras": "no such model file"}
    for model, words in cases.items():
        rc = main(["predict", "--model", str(model), str(files / "big.jpg")])
        err = capsys.readouterr().err.strip()
        assert rc == 2, model
        assert words in err and len(err.splitlines()) == 1, err


# --- the upload cell's logic, without the widget ----------------------------------------------

def test_explain_upload_gives_decision_check_and_overlay(tiny):
    predictor = predict.Predictor(_model(tiny))
    path = tiny.frame("test")["path"].iloc[0]
    with open(path, "rb") as fh:
        row, fig = predict.explain_upload(predictor, fh.read(), "lesion.jpg")
    direct = predict.predict_files(_model(tiny), [path], progress=False)["results"][0]
    assert row["class"] == direct["class"] and row["rule"] == "prior_corrected"
    assert row["probs"] == pytest.approx(direct["probs"], abs=1e-6)
    assert row["input_score"] == direct["input_score"] and row["flagged"] is False
    assert len(fig.axes) == 3 and "prior_corrected" in fig._suptitle.get_text()
    buf = io.BytesIO()
    Image.new("RGB", (120, 90), (10, 200, 10)).save(buf, "PNG")
    row, fig = predict.explain_upload(predictor, buf.getvalue(), "green.png")
    assert row["flagged"] is True and "FLAGGED" in fig._suptitle.get_text()
    with pytest.raises(ValueError, match="notes.txt: not a JPEG/PNG"):
        predict.explain_upload(predictor, b"plain text", "notes.txt")


def test_uploaded_files_reads_both_ipywidgets_forms():
    v8 = ({"name": "a.jpg", "type": "image/jpeg", "size": 3, "content": memoryview(b"abc")},)
    v7 = {"b.png": {"metadata": {"name": "b.png"}, "content": b"xyz"}}
    assert predict.uploaded_files(v8) == [("a.jpg", b"abc")]
    assert predict.uploaded_files(v7) == [("b.png", b"xyz")]
    assert predict.uploaded_files(()) == []


# --- the smoke series -------------------------------------------------------------------------

@pytest.mark.slow
def test_predict_reproduces_notebook_02_on_the_smoke_run(smoke_run, tmp_path, capsys):
    from conftest import notebook_ok

    from skinlib import session

    notebook_ok(smoke_run, "02_baseline_cnn")
    s = session.start("smoke", None, str(smoke_run.run_dir), quiet=True)
    model = s.run.models / "02_baseline_cnn.keras"
    assert (s.run.models / "02_baseline_cnn.card.json").exists()
    df, _ = _csv_run(capsys, model, s.frame("test")["path"], tmp_path / "02.csv")
    pred = df["class"].map(s.classes.index).to_numpy()
    facts = s.run.read_metrics("02_baseline_cnn")
    assert metrics.balanced_accuracy(s.frame("test")["label"], pred, 7) == \
        facts["balanced_accuracy"]


def test_new_images_are_resized_as_the_models_training_images_were(tiny, files, tmp_path):
    from skinlib.image_cache import resize_uint8

    image = predict.read_image(files / "big.jpg")
    assert json.loads((_model(tiny).with_suffix(".card.json")).read_text())["resize"] == "area"
    got = {}
    for method in ("area", "antialias", None):  # None: a card written before the field
        folder = tmp_path / str(method)
        folder.mkdir()
        model = _copy_with_card(tiny, folder, resize=method)
        if method is None:
            card = json.loads((folder / "m.card.json").read_text())
            del card["resize"]
            (folder / "m.card.json").write_text(json.dumps(card))
        p = predict.Predictor(model)
        got[method] = p.classify([image])["x"][0]
        want = resize_uint8(image, p.size, method or "antialias").numpy()
        np.testing.assert_array_equal(got[method], want.astype(np.float32))
    assert not np.array_equal(got["area"], got["antialias"])
