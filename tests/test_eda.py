"""Tests for skinlib.eda: the facts of notebook 01 and the sentences under its figures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from skinlib import eda, info


@pytest.fixture
def catalog():
    """60 nv (30 lesions of 2 images), 30 mel (one lesion of 6, 24 of 1), 10 df (10 lesions)."""
    rows = [dict(dx="nv", lesion_id=f"nv{i // 2}", age=40.0, sex="male" if i % 3 else "female",
                 localization="back", dx_type="follow_up") for i in range(60)]
    rows += [dict(dx="mel", lesion_id="mel0" if i < 6 else f"mel{i}", age=60.0, sex="male",
                  localization="face" if i < 20 else "back", dx_type="histo") for i in range(30)]
    rows += [dict(dx="df", lesion_id=f"df{i}", age=np.nan if i == 0 else 35.0, sex="female",
                  localization="lower extremity", dx_type="histo" if i < 5 else "consensus")
             for i in range(10)]
    df = pd.DataFrame(rows)
    df.attrs["classes"] = info.classes("ham10000")
    return df


def test_class_counts_and_majority_baseline_from_the_data(catalog):
    text = eda.reading_class_counts(catalog)
    assert text.startswith("100 images in 3 classes. The largest, nv (Melanocytic nevus), has "
                           "60 images (60%); the smallest, df (Dermatofibroma), has 10, 6 times")
    assert "always answers nv is right 60% of the time" in text
    assert "balanced accuracy (the mean recall over the 3 classes) is 1/3 = 33%" in text
    assert eda.class_order(catalog) == ["df", "mel", "nv"]


def test_images_per_lesion_spells_out_the_tail(catalog):
    text = eda.reading_images_per_lesion(catalog)
    assert text.startswith("65 lesions: 34 photographed once, 31 more than once (66 images, 66% "
                           "of all). The tail: 1 with 6 images.")


def test_patient_and_site_readings(catalog):
    assert eda.reading_age(catalog).startswith(
        "Median age runs from 35 years (df) to 60 (mel); 1 images have no age. A gap of 25 years")
    male = (catalog["sex"] == "male").mean()
    assert eda.reading_sex(catalog).startswith(
        f"{male:.0%} of the images with a recorded sex are of men; by class the share runs "
        f"from 0% (df) to 100% (mel).")
    text = eda.reading_localization(catalog)
    assert text.startswith("The commonest site is the back (70% of images).")
    assert "df lower extremity (100%); mel face (67%); nv back (100%)." in text
    assert eda.reading_dx_type(catalog).startswith(
        "Histopathology confirms 100% of the mel images but 0% of the nv images")


def test_image_sample_and_its_reading(tmp_path, catalog):
    rng = np.random.default_rng(0)
    paths = []
    for i, dx in enumerate(catalog["dx"]):
        path = tmp_path / f"{i}.png"
        colour = {"mel": (200, 60, 40), "nv": (120, 90, 80), "df": (90, 90, 160)}[dx]
        pixels = np.clip(np.array(colour) + rng.integers(-5, 5, (12, 16, 3)), 0, 255)
        Image.fromarray(pixels.astype(np.uint8)).save(path)
        paths.append(str(path))
    stats = eda.image_sample(catalog.assign(path=paths), sample=100, seed=0)
    assert stats["n"] == 100 and stats["sizes"].to_dict() == {(16, 12): 100}
    assert list(stats["colour"].index) == ["df", "mel", "nv"]
    text = eda.reading_image_stats(stats)
    assert text.startswith("Of 100 sampled images (0 unreadable), all are 16x12 px.")
    assert "reddest class on average is mel (red minus blue 160 of 255), the least red df (-70)" \
        in text


def test_examples_name_short_classes(catalog):
    text = eda.reading_examples(catalog, per_class=12)
    assert "One row per class (3 rows, up to 12 random images each)" in text
    assert "Fewer images than columns: df (10)." in text
    assert "Fewer" not in eda.reading_examples(catalog, per_class=6)


def test_class_legend_spells_out_every_code():
    lines = info.class_legend("ham10000").splitlines()
    assert [ln.split()[0] for ln in lines] == info.classes("ham10000")
    assert lines[4] == "mel    Melanoma  (malignant)" and lines[3] == "df     Dermatofibroma"
    assert info.class_name("scc") == "Squamous cell carcinoma" and info.class_name("x") == "x"
    with pytest.raises(ValueError, match="unknown dataset"):
        info.class_legend("mnist")
