"""``python -m skinlib predict``: images of any size, JSON, Grad-CAM overlays, bad input."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

keras = pytest.importorskip("keras")
from PIL import Image  # noqa: E402

from skinlib.cli import main  # noqa: E402
from skinlib.models.cnn import build_cnn  # noqa: E402


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


def test_text_output_top3_and_input_size(files, capsys):
    rc = main(["predict", "--model", str(files / "cnn.keras"), str(files / "big.jpg"),
               str(files / "gray.png")])
    out = capsys.readouterr().out
    assert rc == 0
    assert "input 48x64" in out and "big.jpg (600x450)" in out and "gray.png (37x29)" in out
    line = next(ln for ln in out.splitlines() if "big.jpg" in ln)
    probs = [float(t.split()[-1]) for t in line.split(": ", 1)[1].split(", ")]
    assert len(probs) == 3 and probs == sorted(probs, reverse=True)


def test_json_and_gradcam_overlays_at_image_size(files, tmp_path, capsys):
    imgs = [files / "big.jpg", files / "gray.png", files / "a.png"]
    rc = main(["predict", "--model", str(files / "cnn.keras"), "--json", "--top", "7",
               "--gradcam", str(tmp_path / "cams"), *map(str, imgs)])
    assert rc == 0
    report = json.loads(capsys.readouterr().out)
    assert report["input_size"] == [48, 64] and report["dataset"] == "ham10000"
    assert len(report["results"]) == 3
    for r, img in zip(report["results"], imgs):
        assert abs(sum(t["prob"] for t in r["top"]) - 1) < 1e-3
        with Image.open(img) as src, Image.open(r["overlay"]) as ov:
            assert ov.size == src.size and ov.mode == "RGB"


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
