"""Bad input (DESIGN.md): each broken case is found, named with its file, handled and counted."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from skinlib import data

CASES = ["empty", "random", "truncated", "png", "gray", "rgba", "cmyk", "png16", "huge"]
UNREADABLE = {"empty", "random", "truncated"}
CONVERTIBLE = {"png", "gray", "rgba", "cmyk", "png16", "huge"}


def _break(path: Path, case: str, rng: np.random.Generator) -> None:
    """Overwrite the image at ``path`` (named .jpg) with one bad case."""
    with Image.open(path) as im:
        rgb = im.convert("RGB")
    if case == "empty":
        path.write_bytes(b"")
    elif case == "random":
        path.write_bytes(rng.integers(0, 256, 5000, dtype=np.uint8).tobytes())
    elif case == "truncated":
        buf = io.BytesIO()
        rgb.save(buf, "JPEG", quality=95)
        path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    elif case == "png":
        rgb.save(path, "PNG")
    elif case == "gray":
        rgb.convert("L").save(path, "JPEG")
    elif case == "rgba":
        rgb.convert("RGBA").save(path, "PNG")
    elif case == "cmyk":
        rgb.convert("CMYK").save(path, "JPEG")
    elif case == "png16":
        arr = (np.asarray(rgb.convert("L"), np.uint16) * 257).astype(np.uint16)
        Image.fromarray(arr).save(path, "PNG")
    elif case == "huge":
        rgb.resize((7000, 6000)).save(path, "JPEG", quality=50)


@pytest.fixture()
def bad_root(fake_root, tmp_path):
    """A copy of the fake set with every bad case of DESIGN.md planted, and what went where."""
    root = tmp_path / "bad"
    shutil.copytree(fake_root, root)
    meta_path = root / "HAM10000_metadata.csv"
    meta = pd.read_csv(meta_path, dtype=str, keep_default_na=False)
    paths = {p.stem: p for p in root.rglob("ISIC_*.jpg")}
    nv = sorted(meta.loc[meta["dx"] == "nv", "image_id"])
    rng = np.random.default_rng(0)
    planted = {case: nv[i] for i, case in enumerate(CASES)}
    for case, image_id in planted.items():
        _break(paths[image_id], case, rng)
    rest = iter(nv[len(CASES):])
    planted["unknown_dx"] = next(rest)
    meta.loc[meta["image_id"] == planted["unknown_dx"], "dx"] = "xyz"
    planted["blank_lesion"] = next(rest)
    meta.loc[meta["image_id"] == planted["blank_lesion"], "lesion_id"] = ""
    planted["bad_age"] = next(rest)
    meta.loc[meta["image_id"] == planted["bad_age"], "age"] = "eighty"
    planted["no_image"] = next(rest)
    paths[planted["no_image"]].unlink()
    planted["dup_row"] = next(rest)
    meta = pd.concat([meta, meta[meta["image_id"] == planted["dup_row"]]], ignore_index=True)
    meta["notes"] = "extra column"
    planted["orphan"] = "ISIC_9999999"
    Image.new("RGB", (200, 150), (90, 40, 40)).save(paths[nv[0]].parent / "ISIC_9999999.jpg")
    text = meta.to_csv(index=False, lineterminator="\r\n")
    meta_path.write_bytes(text.encode("utf-8-sig"))  # BOM and CRLF
    return root, planted, len(meta)


def _counts_add_up(r: dict) -> None:
    """Every row and every image is kept or counted under exactly one reason."""
    assert r["n_kept"] + sum(r[k] for k in data.ROW_COUNTS) == r["n_rows_metadata"], r
    assert (r["n_kept"] + r["rows_unknown_dx"] + r["rows_unreadable"] + r["rows_needs_conversion"]
            + r["images_without_row"]) == r["n_images_found"], r


def test_every_case_handled_with_run_dir(bad_root, tmp_path):
    root, planted, n_rows = bad_root
    run = tmp_path / "run"
    df = data.load_local(root, run_dir=run)
    r = json.loads((run / "logs" / "catalog_report.json").read_text())
    assert r["n_rows_metadata"] == n_rows == 421
    assert r["rows_unreadable"] == len(UNREADABLE)
    assert r["n_converted"] == len(CONVERTIBLE) and r["n_downscaled"] == 1
    assert r["rows_unknown_dx"] == 1 and r["rows_no_image"] == 1 and r["rows_duplicate_id"] == 1
    assert r["images_without_row"] == 1 and r["n_blank_lesion_id"] == 1 and r["n_bad_age"] == 1
    assert r["n_kept"] == len(df) == 420 - len(UNREADABLE) - 2
    _counts_add_up(r)
    ids = set(df["image_id"])
    for case in UNREADABLE | {"unknown_dx", "no_image", "orphan"}:
        assert planted[case] not in ids, case
    by_id = df.set_index("image_id")
    for case in CONVERTIBLE:
        path = Path(by_id.loc[planted[case], "path"])
        assert path.parent == (run / "converted").resolve()
        with Image.open(path) as im:
            im.load()
            assert (im.format, im.mode) == ("JPEG", "RGB")
            assert max(im.size) <= 1024
    assert by_id.loc[planted["blank_lesion"], "lesion_id"] == planted["blank_lesion"]
    assert np.isnan(by_id.loc[planted["bad_age"], "age"])
    assert "notes" not in df.columns
    skipped = pd.read_csv(run / "logs" / "skipped.csv")
    for case in UNREADABLE | {"orphan"}:
        assert skipped["path"].str.contains(planted[case]).any(), case
    problems = " ".join(skipped["problem"])
    assert "truncated" in problems and "empty file" in problems and "'xyz'" in problems
    for p in r["problems"]:
        assert p["action"] in ("skipped", "converted", "counted", "fatal")
    # A second load reuses the validation cache and the converted files.
    again = data.load_local(root, run_dir=run)
    assert again.equals(df)


def test_without_run_dir_convertible_are_skipped(bad_root):
    root, planted, _ = bad_root
    df = data.load_local(root)
    r = df.attrs["report"]
    assert r["rows_needs_conversion"] == len(CONVERTIBLE) and r["n_converted"] == 0
    assert all(planted[c] not in set(df["image_id"]) for c in CONVERTIBLE)
    _counts_add_up(r)
    texts = [p["problem"] for p in r["problems"] if p["kind"] == "needs_conversion"]
    assert texts and all("pass a run folder" in t for t in texts)


def test_check_dataset_names_each_file(bad_root):
    root, planted, _ = bad_root
    before = sorted(p.name for p in root.rglob("*"))
    check = data.check_dataset(root)
    assert sorted(p.name for p in root.rglob("*")) == before  # writes nothing
    assert check["ok"] is False
    assert check["converted"] == len(CONVERTIBLE)
    by_case = {}
    for case, image_id in planted.items():
        hits = [p for p in check["problems"]
                if image_id in p["path"] or image_id in p["problem"]]
        assert hits, f"{case}: {image_id} not named"
        by_case[case] = hits[0]
    for case in UNREADABLE:
        assert by_case[case]["action"] == "skipped" and by_case[case]["fatal"]
        assert by_case[case]["path"].endswith(f"{planted[case]}.jpg")
    for case in CONVERTIBLE:
        assert by_case[case]["action"] == "converted" and not by_case[case]["fatal"]
    assert by_case["unknown_dx"]["fatal"] and by_case["no_image"]["fatal"]
    assert by_case["orphan"]["fatal"]
    assert not by_case["blank_lesion"]["fatal"] and not by_case["bad_age"]["fatal"]
    assert not by_case["dup_row"]["fatal"]


def test_only_convertible_problems_keep_check_ok(fake_root, tmp_path):
    root = tmp_path / "conv"
    shutil.copytree(fake_root, root)
    target = sorted(root.rglob("ISIC_*.jpg"))[0]
    _break(target, "cmyk", np.random.default_rng(0))
    check = data.check_dataset(root)
    assert check["ok"] and check["converted"] == 1
    assert check["problems"][0]["path"] == str(target)


def test_missing_columns_is_one_clear_error(fake_root, tmp_path):
    root = tmp_path / "cols"
    shutil.copytree(fake_root, root)
    meta_path = root / "HAM10000_metadata.csv"
    pd.read_csv(meta_path).drop(columns=["dx"]).to_csv(meta_path, index=False)
    with pytest.raises(data.DataError, match=r"HAM10000_metadata.csv lacks column\(s\) \['dx'\]"):
        data.load_local(root, validate=False)
    check = data.check_dataset(root)
    assert not check["ok"] and check["problems"][0]["kind"] == "missing_columns"


def test_empty_class_is_refused(fake_root, tmp_path):
    root = tmp_path / "nodf"
    shutil.copytree(fake_root, root)
    meta_path = root / "HAM10000_metadata.csv"
    meta = pd.read_csv(meta_path, dtype=str, keep_default_na=False)
    for image_id in meta.loc[meta["dx"] == "df", "image_id"]:
        next(root.rglob(f"{image_id}.jpg")).unlink()
    with pytest.raises(data.DataError, match="class 'df' has no images"):
        data.load_local(root, validate=False)


def test_inspect_image_sets_no_pillow_global(tmp_path):
    before = (Image.MAX_IMAGE_PIXELS, __import__("PIL.ImageFile").ImageFile.LOAD_TRUNCATED_IMAGES)
    path = tmp_path / "ISIC_0000001.jpg"
    Image.new("RGB", (20, 10)).save(path, "JPEG")
    assert data.inspect_image(path)["status"] == "ok"
    assert data.header_size(path) == (20, 10)
    assert before == (Image.MAX_IMAGE_PIXELS,
                      __import__("PIL.ImageFile").ImageFile.LOAD_TRUNCATED_IMAGES)


def test_pipeline_reads_every_kept_image(bad_root, tmp_path):
    """End to end: after loading, TensorFlow decodes every kept or converted file, no crash."""
    from skinlib import pipeline

    root, planted, _ = bad_root
    df = data.load_local(root, run_dir=tmp_path / "run")
    x, y = pipeline.load_array(df, (24, 32))
    assert x.shape == (len(df), 24, 32, 3) and len(y) == len(df)
    converted = df["image_id"].isin([planted[c] for c in CONVERTIBLE]).to_numpy()
    assert converted.sum() == len(CONVERTIBLE) and x[converted].std() > 0
