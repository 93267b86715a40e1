"""The run folder: where a run's executed notebooks, metrics, models, figures and splits live.

Nothing in skinlib writes outside a run folder (or a data folder the user named). Importing
skinlib creates no folder; :meth:`RunDir.ensure` does, when a notebook or command starts.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

SUBDIRS = ("notebooks", "metrics", "models", "figures", "logs")


def project_root() -> Path:
    """The checkout's root when skinlib runs from one (it has ``notebooks/``), else the cwd."""
    here = Path(__file__).resolve().parents[1]
    return here if (here / "notebooks").is_dir() else Path.cwd()


def default_run_dir(profile_name: str) -> Path:
    """``$SKINLIB_RUN_DIR`` if set, else ``runs/<profile>`` under the project root."""
    env = os.environ.get("SKINLIB_RUN_DIR")
    return Path(env) if env else project_root() / "runs" / profile_name


@dataclass(frozen=True)
class RunDir:
    """Paths of one run folder."""

    root: Path

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root).expanduser().resolve())

    notebooks = property(lambda self: self.root / "notebooks")
    metrics = property(lambda self: self.root / "metrics")
    models = property(lambda self: self.root / "models")
    figures = property(lambda self: self.root / "figures")
    logs = property(lambda self: self.root / "logs")
    splits_csv = property(lambda self: self.root / "splits.csv")

    def ensure(self) -> "RunDir":
        """Create the run folder and its sub-folders; return self."""
        for sub in SUBDIRS:
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        return self

    def inside(self, *parts: str | os.PathLike) -> Path:
        """A path under the run folder; refuses one that would escape it (``..``, absolute)."""
        path = (self.root.joinpath(*map(str, parts))).resolve()
        if path != self.root and self.root not in path.parents:
            raise ValueError(f"path {Path(*map(str, parts))} would leave the run folder {self.root}")
        return path

    def write_json(self, relpath: str, obj) -> Path:
        """Write ``obj`` as indented JSON under the run folder and return the path."""
        path = self.inside(relpath)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(json_types(obj), indent=2, allow_nan=False) + "\n")
        return path

    def read_json(self, relpath: str):
        """Read a JSON file of this run; a clear error names the notebook that writes it."""
        path = self.inside(relpath)
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist: run the notebook that writes it first "
                                    f"(see the README's notebook list)")
        return json.loads(path.read_text())


def json_types(o):
    """Recursively turn NumPy types, tuples and paths into JSON types; NaN and inf -> None."""
    import math

    import numpy as np

    if isinstance(o, dict):
        return {str(k): json_types(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [json_types(v) for v in o]
    if isinstance(o, np.ndarray):
        return json_types(o.tolist())
    if isinstance(o, bool | np.bool_):
        return bool(o)
    if isinstance(o, int | np.integer):
        return int(o)
    if isinstance(o, float | np.floating):
        return float(o) if math.isfinite(o) else None
    if isinstance(o, os.PathLike):
        return str(o)
    if o is None or isinstance(o, str):
        return o
    raise TypeError(f"cannot write {type(o).__name__} ({o!r}) to JSON")
