"""What a notebook says before it starts: the profile and data it will use, and how long that
took in the measured runs of the series.

The run times come from the run records that ``tools/readme_results.py`` writes from real runs
(``skinlib/run_records/<profile>.json``), never from typed numbers: a profile or device with no
record says so.

Why the defaults differ: ``python -m skinlib run`` defaults to ``smoke`` (it is the "does my
install work" command: fake data, minutes on a CPU, and what CI runs), while a notebook opened by
a person defaults to ``quick`` (real images: a student opens a notebook to learn from real
results). :func:`intro` prints how to switch either way.
"""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path

from skinlib.config import PROFILES

DEFAULT_PROFILE = "quick"  # for a notebook opened by a person; the CLI's default is smoke


def notebook_defaults() -> dict:
    """``profile``, ``data`` and ``run_dir`` of a notebook's parameters cell, from the
    environment (``SKINLIB_PROFILE``, ``SKINLIB_DATA``, ``SKINLIB_RUN_DIR``)."""
    return {"profile": os.environ.get("SKINLIB_PROFILE", DEFAULT_PROFILE),
            "data": os.environ.get("SKINLIB_DATA", "auto"),
            "run_dir": os.environ.get("SKINLIB_RUN_DIR")}


def run_record(profile: str) -> dict | None:
    """The measured run record of a profile (``seconds_per_notebook``, ``machine``,
    ``device``, ``command``), or None where no run of that profile was recorded."""
    res = resources.files("skinlib") / "run_records" / f"{profile}.json"
    return json.loads(res.read_text()) if res.is_file() else None


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def time_estimate(name: str, profile: str) -> str:
    """One line: how long notebook ``name`` took in the recorded run of ``profile``."""
    rec = run_record(profile)
    secs = (rec or {}).get("seconds_per_notebook", {}).get(name)
    if secs is None:
        return f"no measured {profile} run of {name} is recorded yet"
    changed = rec.get("settings") or {}
    with_ = (" with " + ", ".join(f"{k}={v!r}" for k, v in changed.items())) if changed else ""
    return (f"{_minutes(secs)} in the recorded {profile} run{with_} on {rec['machine']}"
            f" ({rec.get('device', 'CPU only')})")


def describe_data(data: str, profile: str) -> str:
    """What ``data`` will resolve to, without loading anything."""
    if data in (None, "", "auto") and profile == "smoke":
        return "a fake HAM10000 look-alike written into the run folder (no download)"
    if data not in (None, "", "auto"):
        return {"synthetic": "a fake HAM10000 look-alike (no download)",
                "kaggle": "HAM10000 downloaded with kagglehub (needs Kaggle credentials)"
                }.get(data, f"the folder {data}")
    from skinlib.data.catalog import local_folder

    local = local_folder()
    if local is not None:
        return f"the local folder {local}"
    return ("no local data under data/: HAM10000 will be downloaded with kagglehub "
            "(about 3 GB; needs Kaggle credentials; fails in one line without them)")


def intro(name: str, profile: str | None = None, data: str | None = None) -> str:
    """Print (and return) what notebook ``name`` will do and how long it took before."""
    defaults = notebook_defaults()
    profile, data = profile or defaults["profile"], data or defaults["data"]
    if profile not in PROFILES:
        raise ValueError(f"SKINLIB_PROFILE={profile!r}: use one of {', '.join(PROFILES)}")
    others = "; ".join(f"{p}: {time_estimate(name, p)}" for p in PROFILES if p != profile)
    text = (f"{name}: profile {profile!r}, data: {describe_data(data, profile)}.\n"
            f"Run time: {time_estimate(name, profile)}.\n"
            f"Other profiles: {others}.\n"
            f"To change: set profile in the parameters cell below (or SKINLIB_PROFILE) to "
            f"'smoke' (fake data, a minute or two on a CPU), 'quick' (real images, a CPU) or "
            f"'full' (the papers' settings, a GPU).")
    print(text)
    return text


def device_line() -> str:
    """The accelerator TensorFlow sees, for run records (``CPU only`` or the GPU's name)."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return "CPU only"
    details = tf.config.experimental.get_device_details(gpus[0])
    return f"{len(gpus)} x {details.get('device_name', 'GPU')}"


def records_dir() -> Path:
    """Where the run records live in a checkout (``tools/readme_results.py`` writes there)."""
    return Path(__file__).resolve().parent / "run_records"
