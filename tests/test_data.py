"""Tests of the data layer: the fake dataset, local layouts, source sites, ISIC 2019, real data."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from skinlib import data, info

FAKE_420_42_HASH = "c9daaf953068d9856477f285b71ae66f88df1b31b5a3da904004d19bccc5b143"
HAM_COUNTS = {"nv": 6705, "mel": 1113, "bkl": 1099, "bcc": 514, "akiec": 327, "vasc": 142,
              "df": 115}


def _digest(root: Path) -> str:
    """sha256 over every file's relative path and bytes."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def _counts_add_up(report: dict) -> None:
    """Every metadata row and every image found is either kept or counted under one reason."""
    rows = report["n_kept"] + sum(report[k] for k in data.ROW_COUNTS)
    assert rows == report["n_rows_metadata"], report
    imgs = (report["n_kept"] + report["rows_unknown_dx"] + report["rows_unreadable"]
            + report["rows_needs_conversion"] + report["images_without_row"])
    assert imgs == report["n_images_found"], report


def test_fake_schema_and_mix(fake_root):
    df = data.load_local(fake_root)
    assert list(df.columns) == data.CATALOG_COLUMNS
    assert len(df) == 420 and df["image_id"].is_unique
    assert df["image_id"].is_monotonic_increasing
    assert df.attrs["classes"] == info.classes("ham10000")
    counts = df["dx"].value_counts()
    assert set(counts.index) == set(info.classes("ham10000"))
    assert counts.idxmax() == "nv" and 0.5 <= counts["nv"] / len(df) <= 0.6
    assert counts.min() >= 15
    ratio = len(df) / df["lesion_id"].nunique()
    assert 1.2 <= ratio <= 1.5
    assert (df["label"] == df["dx"].map(info.classes("ham10000").index)).all()
    meta = pd.read_csv(fake_root / "HAM10000_metadata.csv")
    assert list(meta.columns) == ["lesion_id", "image_id", "dx", "dx_type", "age", "sex",
                                  "localization", "dataset"]
    sites = df.set_index("image_id")["source_site"]
    assert sites.to_dict() == meta.set_index("image_id")["dataset"].to_dict()
    assert set(sites) == set(info.HAM10000["sources"])
    assert (df.groupby("lesion_id")["source_site"].nunique() == 1).all()
    with Image.open(df["path"].iloc[0]) as im:
        assert (im.size, im.mode, im.format) == ((200, 150), "RGB", "JPEG")
    assert {Path(p).parent.name for p in df["path"]} == {"HAM10000_images_part_1",
                                                        "HAM10000_images_part_2"}


def test_fake_classes_differ_in_colour(fake_root):
    df = data.load_local(fake_root, validate=False)
    means = {}
    for dx, group in df.groupby("dx"):
        means[dx] = np.mean([np.asarray(Image.open(p), np.float32).mean((0, 1))
                             for p in group["path"][:8]], axis=0)
    vecs = np.array(list(means.values()))
    dists = np.linalg.norm(vecs[:, None] - vecs[None], axis=-1)
    assert dists[~np.eye(len(vecs), dtype=bool)].min() > 3


def test_fake_deterministic_and_reused(tmp_path):
    a = data.make_fake_dataset(tmp_path / "a", n_images=60, seed=7)
    b = data.make_fake_dataset(tmp_path / "b", n_images=60, seed=7)
    assert _digest(a) == _digest(b)
    c = data.make_fake_dataset(tmp_path / "c", n_images=60, seed=8)
    assert _digest(a) != _digest(c)
    before = {p: p.stat().st_mtime_ns for p in a.rglob("*.jpg")}
    data.make_fake_dataset(a, n_images=60, seed=7)
    assert {p: p.stat().st_mtime_ns for p in a.rglob("*.jpg")} == before
    data.make_fake_dataset(a, n_images=70, seed=7)  # different size: rewritten
    assert len(list(a.rglob("*.jpg"))) == 70


def test_load_catalog_synthetic_uses_run_dir(tmp_path):
    from skinlib.config import get_profile

    profile = get_profile("smoke", fake_images=84, seed=3)
    df = data.load_catalog("synthetic", run_dir=tmp_path / "run", profile=profile)
    assert len(df) == 84 and (df["source"] == "synthetic").all()
    assert (tmp_path / "run" / "fake_data" / "HAM10000_metadata.csv").exists()
    assert (tmp_path / "run" / "logs" / "catalog_report.json").exists()
    assert (tmp_path / "run" / "logs" / "validated.json").exists()


def test_kaggle_layout_with_lowercase_duplicates(fake_root, tmp_path):
    root = tmp_path / "kaggle"
    shutil.copytree(fake_root, root)
    for k in (1, 2):  # Kaggle ships each image folder twice
        shutil.copytree(root / f"HAM10000_images_part_{k}", root / f"ham10000_images_part_{k}")
    (root / "hmnist_8_8_L.csv").write_text("pixel0000,pixel0001,label\n1,2,0\n")
    (root / "hmnist_28_28_RGB.csv").write_text("pixel0000,label\n3,4\n")
    df = data.load_local(root)
    assert len(df) == 420 and df["image_id"].is_unique
    report = df.attrs["report"]
    assert report["n_duplicate_files"] == 420 and report["n_files_found"] == 840
    assert report["metadata"].endswith("HAM10000_metadata.csv")
    _counts_add_up(report)
    check = data.check_dataset(root)
    assert check["ok"] and check["duplicates"] == 420 and check["n_images"] == 420
    assert check["problems"] == []


def test_class_folder_layout(fake_root, tmp_path):
    df0 = data.load_local(fake_root, validate=False)
    root = tmp_path / "folders"
    for r in df0.itertuples():
        (root / r.dx).mkdir(parents=True, exist_ok=True)
        shutil.copy(r.path, root / r.dx / f"{r.image_id}.jpg")
    df = data.load_local(root)
    assert len(df) == 420
    assert (df["lesion_id"] == df["image_id"]).all()
    assert df.set_index("image_id")["dx"].equals(df0.set_index("image_id")["dx"])
    report = df.attrs["report"]
    assert report["layout"] == "class_folders"
    assert any("lesion grouping is impossible" in n for n in report["notes"])


def _write_isic(root: Path, with_images: list[str]) -> None:
    """A tiny ISIC 2019 folder: CRLF one-hot ground truth, metadata, some images."""
    root.mkdir(parents=True)
    cols = list(info.ISIC2019["onehot"])
    ids = [f"ISIC_{i:07d}" for i in range(9)] + ["ISIC_0000009_downsampled"]
    dxs = ["MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC", "NV", "MEL"]
    lines = [",".join(["image"] + cols)]
    for i, d in zip(ids, dxs):
        lines.append(",".join([i] + ["1.0" if c == d else "0.0" for c in cols]))
    (root / "ISIC_2019_Training_GroundTruth.csv").write_bytes("\r\n".join(lines).encode() + b"\r\n")
    meta = ["image,age_approx,anatom_site_general,lesion_id,sex"]
    meta += [f"{i},{30 + n},anterior torso,{'' if n % 3 == 0 else f'BCN_{n // 2:07d}'},female"
             for n, i in enumerate(ids)]
    (root / "ISIC_2019_Training_Metadata.csv").write_bytes("\r\n".join(meta).encode() + b"\r\n")
    img_dir = root / "ISIC_2019_Training_Input"
    img_dir.mkdir()
    for i in with_images:
        Image.new("RGB", (40, 30), (120, 60, 60)).save(img_dir / f"{i}.jpg", "JPEG")


def test_isic2019_tiny(tmp_path):
    root = tmp_path / "isic"
    ids = [f"ISIC_{i:07d}" for i in range(8)] + ["ISIC_0000009_downsampled"]
    _write_isic(root, ids)
    df = data.load_local(root, dataset="isic2019")
    assert list(df.columns) == data.CATALOG_COLUMNS
    assert len(df) == 9 and set(df["dx"]) == set(info.classes("isic2019"))
    assert "ISIC_0000009_downsampled" in set(df["image_id"])
    assert df["dx_type"].isna().all()
    assert df.set_index("image_id").loc["ISIC_0000002", "age"] == 32
    report = df.attrs["report"]
    assert report["rows_no_image"] == 1 and report["n_rows_metadata"] == 10
    assert report["n_blank_lesion_id"] == 4
    blank = df.set_index("image_id").loc["ISIC_0000003", "lesion_id"]
    assert blank == "ISIC_0000003"
    _counts_add_up(report)
    labels = data.load_isic2019_labels(root)
    assert len(labels) == 10 and labels["lesion_id"].isna().sum() == 4


def test_missing_folder_and_no_metadata(tmp_path):
    with pytest.raises(data.DataError, match="does not exist"):
        data.load_local(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(data.DataError, match="no metadata CSV found"):
        data.load_local(tmp_path / "empty")
    check = data.check_dataset(tmp_path / "empty")
    assert not check["ok"] and check["problems"][0]["action"] == "fatal"


def test_download_kaggle_failure_is_one_clear_line(monkeypatch):
    import sys
    import types

    fake = types.ModuleType("kagglehub")

    def fail(slug):
        raise ConnectionError("no route to host\nlong traceback text")

    fake.dataset_download = fail
    monkeypatch.setitem(sys.modules, "kagglehub", fake)
    with pytest.raises(data.DataError) as err:
        data.download_kaggle("ham10000")
    text = str(err.value)
    assert "kmader/skin-cancer-mnist-ham10000" in text and "SKINLIB_DATA" in text
    assert "\n" not in text and err.value.__cause__ is None and err.value.__suppress_context__


def test_auto_uses_env(monkeypatch, fake_root):
    monkeypatch.setenv("SKINLIB_DATA", str(fake_root))
    df = data.load_catalog("auto", validate=False)
    assert len(df) == 420 and (df["source"] == "local").all()


def test_fake_catalog_identity_is_pinned(fake_root):
    """The fake set's image/lesion/dx rows are those of every earlier version (same seed)."""
    from skinlib.session import catalog_hash

    df = data.load_local(fake_root, validate=False)
    assert catalog_hash(df) == FAKE_420_42_HASH
    assert catalog_hash(df.drop(columns="source_site")) == FAKE_420_42_HASH


# ----------------------------------------------------------------------------- source sites

HAM_FORM_IDS = [f"ISIC_{i:07d}" for i in range(8)]  # one image per class, and a second nv


def _write_ham(root: Path, name: str, sites: list[str] | None, images: bool = True) -> Path:
    """A tiny HAM10000 metadata CSV (Kaggle form, or Dataverse form with ``sites``) + images."""
    root.mkdir(parents=True, exist_ok=True)
    dxs = info.classes("ham10000") + ["nv"]
    header = "lesion_id,image_id,dx,dx_type,age,sex,localization" + (",dataset" if sites else "")
    lines = [header]
    for n, (image_id, dx) in enumerate(zip(HAM_FORM_IDS, dxs)):
        extra = f",{sites[n]}" if sites else ""
        lines.append(f"HAM_{n:07d},{image_id},{dx},histo,{40 + n}.0,male,back{extra}")
    (root / name).write_text("\n".join(lines) + "\n")
    for image_id in HAM_FORM_IDS if images else []:
        Image.new("RGB", (40, 30), (120, 60, 60)).save(root / f"{image_id}.jpg", "JPEG")
    return root / name


SITES = ["rosendahl", "vidir_modern", "vidir_modern", "vienna_dias", "rosendahl",
         "vidir_molemax", "vidir_molemax", "rosendahl"]


def test_source_site_from_dataverse_form(tmp_path):
    _write_ham(tmp_path / "dv", "HAM10000_metadata.csv", SITES)
    df = data.load_local(tmp_path / "dv")
    assert df.set_index("image_id")["source_site"].to_dict() == dict(zip(HAM_FORM_IDS, SITES))
    assert df.attrs["report"]["n_metadata_disagreements"] == 0


def test_source_site_empty_for_kaggle_form(tmp_path):
    _write_ham(tmp_path / "kg", "HAM10000_metadata.csv", None)
    df = data.load_local(tmp_path / "kg")
    assert len(df) == 8 and (df["source_site"] == "").all()


def test_both_metadata_forms_are_joined_not_duplicated(tmp_path):
    """Kaggle file kept as the metadata; sites joined by image_id; disagreements counted."""
    root = tmp_path / "both"
    _write_ham(root, "HAM10000_metadata.csv", None)
    dv = _write_ham(root / "sources", "HAM10000_metadata_with_dataset.csv", SITES, images=False)
    lines = dv.read_text().splitlines()[:-1]  # the last image has no row here
    lines[7] = lines[7].replace(",vasc,", ",mel,")  # and one row disagrees on dx
    dv.write_text("\n".join(lines) + "\n")
    df = data.load_local(root)
    assert len(df) == 8 and df["image_id"].is_unique
    sites = df.set_index("image_id")["source_site"]
    assert sites.to_dict() == dict(zip(HAM_FORM_IDS, SITES[:7] + [""]))
    assert df.set_index("image_id").loc[HAM_FORM_IDS[6], "dx"] == "vasc"  # Kaggle kept
    report = df.attrs["report"]
    assert report["metadata"].endswith("both/HAM10000_metadata.csv")
    assert report["n_without_source_site"] == 1 and report["n_metadata_disagreements"] == 1
    (problem,) = [p for p in report["problems"] if p["kind"] == "metadata_disagreement"]
    assert HAM_FORM_IDS[6] in problem["problem"] and not problem["fatal"]
    assert any("source_site from" in n and "7 of 8 rows found" in n for n in report["notes"])
    assert data.check_dataset(root)["ok"]


# ----------------------------------------------------------------------------- real data


@pytest.fixture(scope="session")
def real_catalog(shared_data, tmp_path_factory):
    """The real HAM10000 catalog, validated once per session."""
    run = tmp_path_factory.mktemp("realrun")
    return data.load_local(shared_data, run_dir=run), run


@pytest.mark.realdata
def test_real_ham10000(real_catalog):
    df, run = real_catalog
    assert len(df) == 10015
    assert df["lesion_id"].nunique() == 7470
    assert df["dx"].value_counts().to_dict() == HAM_COUNTS
    report = df.attrs["report"]
    assert report["n_kept"] == 10015 and report["n_problems"] == 0
    _counts_add_up(report)
    assert report["seconds"]["validate"] < 40
    assert (run / "logs" / "validated.json").exists()
    again = data.load_local(df.attrs["report"]["root"], run_dir=run)  # cached validation
    assert len(again) == 10015 and again.attrs["report"]["seconds"]["validate"] < 5


@pytest.mark.realdata
def test_real_source_sites(shared_data):
    """Both metadata forms lie in the real folder: one row per image, the four sources."""
    df = data.load_local(shared_data, validate=False)
    assert len(df) == 10015 and df["image_id"].is_unique
    assert df["source_site"].value_counts().to_dict() == {
        "vidir_molemax": 3954, "vidir_modern": 3363, "rosendahl": 2259, "vienna_dias": 439}
    report = df.attrs["report"]
    assert report["metadata"].endswith("ham10000_metadata/HAM10000_metadata.csv")
    assert report["n_metadata_disagreements"] == 0 and report["n_without_source_site"] == 0
    assert report["n_problems"] == 0


@pytest.mark.realdata
def test_real_isic2019(shared_data):
    df = data.load_local(shared_data, dataset="isic2019", validate=False)
    assert len(df) == 10015
    assert set(df["dx"]) == set(info.classes("isic2019"))
    report = df.attrs["report"]
    assert report["rows_no_image"] == 15316 and report["n_rows_metadata"] == 25331
    assert report["problem_kinds"]["no_image"] == 15316
    _counts_add_up(report)
    labels = data.load_isic2019_labels(shared_data)
    assert len(labels) == 25331
    assert labels["dx"].value_counts()["nv"] == 12875


def test_fake_refuses_foreign_folder(tmp_path):
    (tmp_path / "HAM10000_metadata.csv").write_text("lesion_id,image_id,dx\n")
    with pytest.raises(data.DataError, match="did not write"):
        data.make_fake_dataset(tmp_path, n_images=60)
    assert (tmp_path / "HAM10000_metadata.csv").exists()


def test_format_report_names_problems(tmp_path):
    (tmp_path / "empty").mkdir()
    text = data.format_report(data.check_dataset(tmp_path / "empty"))
    assert "no metadata CSV found" in text and text.endswith("before training")
