"""Shared pytest fixtures: a synthetic HAM10000 look-alike and the real data folder."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> Path:
    """A 420-image synthetic HAM10000 folder in the Kaggle layout, written once per session."""
    from skinlib.data import make_synthetic

    return make_synthetic(tmp_path_factory.mktemp("synthetic") / "ham", n_images=420, seed=42)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real data folder (``../shared/data``); skips the test where it is absent."""
    if not (SHARED_DATA / "ham10000_metadata" / "HAM10000_metadata.csv").exists():
        pytest.skip(f"real data not found at {SHARED_DATA} (see shared/data/SOURCES.md)")
    return SHARED_DATA
