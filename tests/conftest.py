"""Shared pytest fixtures: the fake HAM10000 look-alike and the real data folder."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session", autouse=True)
def image_cache_dir(tmp_path_factory):
    """The session's decoded-image caches go to a temporary folder, not ~/.cache/skinlib
    (notebooks run by the smoke tests inherit it through the environment)."""
    import os

    before = os.environ.get("SKINLIB_CACHE_DIR")
    folder = tmp_path_factory.mktemp("image_cache")
    os.environ["SKINLIB_CACHE_DIR"] = str(folder)
    yield folder
    if before is None:
        os.environ.pop("SKINLIB_CACHE_DIR", None)
    else:
        os.environ["SKINLIB_CACHE_DIR"] = before


@pytest.fixture(scope="session")
def fake_root(tmp_path_factory) -> Path:
    """A 420-image fake HAM10000 folder in the Kaggle layout, written once per session."""
    from skinlib.data import make_fake_dataset

    return make_fake_dataset(tmp_path_factory.mktemp("fake") / "ham", n_images=420, seed=42)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real data folder (``../shared/data``); skips the test where it is absent."""
    if not (SHARED_DATA / "ham10000_metadata" / "HAM10000_metadata.csv").exists():
        pytest.skip(f"real data not found at {SHARED_DATA} (see shared/data/SOURCES.md)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tensorboard_scalars():
    """A reader: folder -> {tag: [(step, value)]} of every scalar in its TensorBoard event files."""
    def read(folder: Path) -> dict[str, list[tuple[int, float]]]:
        import tensorflow as tf

        out: dict[str, list] = {}
        for path in sorted(Path(folder).rglob("events.out.tfevents.*")):
            for event in tf.compat.v1.train.summary_iterator(str(path)):
                for v in event.summary.value:
                    out.setdefault(v.tag, []).append((event.step,
                                                      float(tf.make_ndarray(v.tensor))))
        return out

    return read


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """Every notebook of the series run once, headless, with the ``smoke`` profile.

    Returns the :class:`skinlib.runner.RunResult`; a notebook test asserts on the JSON its
    notebook wrote under ``result.run_dir / "metrics"``. Set ``SKINLIB_SMOKE_ONLY=02,03`` to run
    a subset while developing.
    """
    import os

    from skinlib.runner import run_series

    out = tmp_path_factory.mktemp("smoke_run")
    only = os.environ.get("SKINLIB_SMOKE_ONLY") or None
    return run_series("smoke", out=out, only=only, progress=False, timeout=600)


def notebook_ok(result, name: str) -> None:
    """Fail with the runner's message if the series stopped at or before ``name``."""
    from skinlib.config import NOTEBOOKS

    if result.failed and NOTEBOOKS.index(result.failed) <= NOTEBOOKS.index(name):
        pytest.fail(result.message)
