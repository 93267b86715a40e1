"""The run folder: where a run's executed notebooks, metrics, models, figures and splits live.

Nothing in skinlib writes outside a run folder (or a data folder the user named). Importing
skinlib creates no folder; :meth:`RunDir.ensure` does, when a notebook or command starts.
:class:`RunDir` is the only reader and writer of the folder's JSON and npz files, and the only
place that says "run notebook X first" (:class:`MissingArtifactError`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from skinlib.config import notebook_name

SUBDIRS = ("notebooks", "metrics", "models", "figures", "logs")
# What a metrics JSON holds: one model's evaluate dict; a notebook's comparison of several
# models (``models``: name -> evaluate dict); or a notebook's facts, which hold no model of the
# shared test split (EDA counts, GAN quality, CAM checks, the leakage experiment's other splits).
METRIC_KINDS = ("model", "comparison", "facts")


def project_root() -> Path:
    """The checkout's root when skinlib runs from one (it has ``notebooks/``), else the cwd."""
    here = Path(__file__).resolve().parents[1]
    return here if (here / "notebooks").is_dir() else Path.cwd()


def default_run_dir(profile_name: str) -> Path:
    """``$SKINLIB_RUN_DIR`` if set, else ``runs/<profile>`` under the project root."""
    env = os.environ.get("SKINLIB_RUN_DIR")
    return Path(env) if env else project_root() / "runs" / profile_name


class MissingArtifactError(FileNotFoundError):
    """A notebook needs what an earlier notebook writes."""


def _read_json(path: Path):
    """A JSON file's content; ValueError naming the file when it is not JSON."""
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}); delete it and re-run the notebook "
                         "that wrote it") from None


@dataclass(frozen=True)
class RunDir:
    """One run folder: its paths, and the only reader/writer of its JSON and npz files."""

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

    def require(self, relpath: str, notebook: str, profile: str | None = None,
                hint: str = "") -> Path:
        """The path of an artifact an earlier notebook writes, or :class:`MissingArtifactError`
        naming that notebook and the command that runs it (``hint`` adds another way out)."""
        path = self.inside(relpath)
        if not path.exists():
            name = notebook_name(notebook)
            command = ("python -m skinlib run" + (f" --profile {profile}" if profile else "")
                       + f" --only {name[:2]} --out {self.root}")
            raise MissingArtifactError(
                f"{path} is missing: run notebooks/{name}.ipynb first with the same profile and "
                f"run folder ({command}){', ' + hint if hint else ''}")
        return path

    # --- JSON records -------------------------------------------------------------------

    def write_json(self, relpath: str, obj) -> Path:
        """Write ``obj`` as indented JSON under the run folder and return the path."""
        path = self.inside(relpath)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(json_types(obj), indent=2, allow_nan=False) + "\n")
        return path

    def write_record(self, relpath: str, record: dict) -> Path:
        """Write a record (a training run's, a GAN's, the environment's) as JSON."""
        return self.write_json(relpath, record)

    def read_record(self, relpath: str) -> dict | None:
        """A record written by :meth:`write_record`, or None if there is none yet."""
        path = self.inside(relpath)
        return _read_json(path) if path.exists() else None

    def run_times(self) -> dict[str, float]:
        """Seconds each notebook took in this folder (``logs/run_times.json``; {} if none)."""
        return self.read_record("logs/run_times.json") or {}

    def write_run_times(self, seconds: dict[str, float]) -> Path:
        """Write ``logs/run_times.json``."""
        return self.write_record("logs/run_times.json", seconds)

    def add_execution(self, name: str, seconds: float, status: str = "ok") -> Path:
        """Record one notebook execution: its time becomes the notebook's last in
        ``logs/run_times.json``, and a line is appended to ``logs/run_history.jsonl``."""
        import datetime

        self.write_run_times({**self.run_times(), name: round(float(seconds), 1)})
        path = self.inside("logs", "run_history.jsonl")
        path.parent.mkdir(parents=True, exist_ok=True)
        line = {"notebook": name, "seconds": round(float(seconds), 1), "status": status,
                "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(
                    timespec="seconds")}
        with path.open("a") as f:
            f.write(json.dumps(line) + "\n")
        return path

    def run_history(self) -> list[dict]:
        """Every recorded execution in this folder, oldest first ([] if none)."""
        path = self.inside("logs", "run_history.jsonl")
        if not path.exists():
            return []
        out = []
        for i, line in enumerate(path.read_text().splitlines(), 1):
            if line.strip():
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError as err:
                    raise ValueError(f"{path}, line {i}: not JSON ({err.msg})") from err
        return out

    def work_times(self) -> dict[str, float]:
        """Seconds of each notebook's longest successful execution in this folder.

        A notebook run again loads the models its first execution trained and takes a fraction
        of the time, so the last execution (``run_times``) understates what the notebook costs;
        the longest one is the execution that did the work. Notebooks the history lacks (folders
        from before it) keep their ``run_times`` figure.
        """
        times = dict(self.run_times())
        best: dict[str, float] = {}
        for ex in self.run_history():
            if ex.get("status", "ok") == "ok":
                best[ex["notebook"]] = max(best.get(ex["notebook"], 0.0), ex["seconds"])
        times.update(best)
        return times

    # --- metrics JSON -------------------------------------------------------------------

    def write_metrics(self, name: str, obj: dict, *, kind: str) -> Path:
        """Write ``metrics/<name>.json`` with its ``kind`` (see :data:`METRIC_KINDS`)."""
        if kind not in METRIC_KINDS:
            raise ValueError(f"kind={kind!r} for metrics/{name}.json: use one of {METRIC_KINDS}")
        if obj.get("kind", kind) != kind:
            raise ValueError(f"metrics/{name}.json: the dict says kind={obj['kind']!r}, the "
                             f"caller kind={kind!r}")
        if kind == "model" and "balanced_accuracy" not in obj:
            raise ValueError(f"metrics/{name}.json: a model's JSON holds a metrics.evaluate dict")
        if kind == "comparison" and not isinstance(obj.get("models"), dict):
            raise ValueError(f"metrics/{name}.json: a comparison holds a 'models' dict "
                             "(model name -> metrics.evaluate dict)")
        return self.write_json(f"metrics/{name}.json", {"kind": kind, **obj})

    def read_metrics(self, name: str, notebook: str | None = None,
                     profile: str | None = None) -> dict:
        """``metrics/<name>.json``; when absent, an error naming ``notebook`` (default: the
        notebook numbered like ``name``)."""
        path = self.require(f"metrics/{name}.json", notebook or name[:2], profile)
        return _read_json(path)

    def metrics_files(self) -> dict[Path, dict]:
        """Every ``metrics/*.json`` of the run (file -> content), sorted by file name; each must
        carry a known ``kind``."""
        if not self.metrics.is_dir():
            raise MissingArtifactError(f"no metrics folder at {self.metrics}: run the notebooks "
                                       f"that write metrics JSON first (python -m skinlib run "
                                       f"--out {self.root})")
        out = {}
        for f in sorted(self.metrics.glob("*.json")):
            obj = _read_json(f)
            kind = obj.get("kind") if isinstance(obj, dict) else None
            if kind not in METRIC_KINDS:
                raise ValueError(f"{f} has kind={kind!r}, not one of {METRIC_KINDS}: it was "
                                 f"written by an older skinlib; re-run notebook {f.name[:2]}")
            out[f] = obj
        return out

    def load_metrics(self) -> list[dict]:
        """One dict per model of the run's ``model`` and ``comparison`` metrics files, each
        with ``source`` = the file it came from.

        A comparison's models take the file's other top-level keys (but ``kind``) as defaults,
        and ``model`` = their name if absent. ``facts`` files hold no model and are skipped.
        """
        out = []
        for f, obj in self.metrics_files().items():
            if obj["kind"] == "model":
                out.append({**obj, "source": str(f)})
            elif obj["kind"] == "comparison":
                shared = {k: v for k, v in obj.items() if k not in ("models", "kind")}
                out += [{**shared, **d, "model": d.get("model", name), "source": str(f)}
                        for name, d in obj["models"].items()]
        return out

    # --- arrays -------------------------------------------------------------------------

    def write_arrays(self, relpath: str, compressed: bool = False, **arrays) -> Path:
        """Write named arrays as an ``.npz`` under the run folder and return the path."""
        import numpy as np

        path = self.inside(relpath)
        path.parent.mkdir(parents=True, exist_ok=True)
        (np.savez_compressed if compressed else np.savez)(path, **arrays)
        return path

    def read_arrays(self, relpath: str, notebook: str, profile: str | None = None) -> dict:
        """The arrays of an ``.npz`` an earlier notebook wrote (name -> array)."""
        import numpy as np

        with np.load(self.require(relpath, notebook, profile), allow_pickle=False) as saved:
            return {k: saved[k] for k in saved.files}

    def write_test_probs(self, name: str, image_ids, probs) -> Path:
        """Save a model's test probabilities as ``models/<name>_test_probs.npz``, keyed by image,
        for paired comparisons in later notebooks."""
        import numpy as np

        return self.write_arrays(f"models/{name}_test_probs.npz",
                                 image_id=np.asarray(image_ids).astype(str),
                                 probs=np.asarray(probs, dtype=np.float64))

    def load_test_probs(self, name: str, notebook: str, expected_ids,
                        profile: str | None = None):
        """Test probabilities saved by :meth:`write_test_probs`, checked against the image ids
        of this run's test split."""
        import numpy as np

        saved = self.read_arrays(f"models/{name}_test_probs.npz", notebook, profile)
        if not np.array_equal(saved["image_id"], np.asarray(expected_ids).astype(str)):
            raise ValueError(f"models/{name}_test_probs.npz in {self.root} was computed on "
                             f"another test split: re-run notebook {notebook_name(notebook)}")
        return saved["probs"]

    # --- model cards --------------------------------------------------------------------

    def write_card(self, name: str, card: dict, reference: dict | None = None) -> Path:
        """Write the model card ``models/<name>.card.json`` beside ``models/<name>.keras``, and
        the input check's reference arrays as ``models/<name>.reference.npz``
        (:mod:`skinlib.card`)."""
        if reference is not None:
            self.write_arrays(f"models/{name}.reference.npz", compressed=True, **reference)
        return self.write_json(f"models/{name}.card.json", card)


def card_paths(model_path) -> tuple[Path, Path]:
    """Where :meth:`RunDir.write_card` puts a model file's card and reference arrays."""
    p = Path(model_path)
    stem = p.name[:-len(".keras")] if p.name.endswith(".keras") else p.stem
    return p.with_name(f"{stem}.card.json"), p.with_name(f"{stem}.reference.npz")


def read_card(model_path) -> tuple[dict | None, dict | None]:
    """The card and reference arrays written beside a model file, wherever it lies now;
    ``(None, None)`` without a card, ``(card, None)`` without reference arrays."""
    import numpy as np

    card_file, ref_file = card_paths(model_path)
    if not card_file.exists():
        return None, None
    card = _read_json(card_file)
    if not ref_file.exists():
        return card, None
    with np.load(ref_file, allow_pickle=False) as saved:
        return card, {k: saved[k] for k in saved.files}


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
