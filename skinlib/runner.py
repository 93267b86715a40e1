"""Run the notebook series headless with papermill, in order, into one run folder."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from skinlib.config import NOTEBOOKS, PROFILES, notebook_name
from skinlib.rundir import RunDir, default_run_dir, project_root


@dataclass
class RunResult:
    """What :func:`run_series` did."""

    run_dir: Path
    seconds: dict[str, float]
    failed: str | None = None
    message: str = ""


def select(only: str | list[str] | None) -> list[str]:
    """Notebook names for ``--only 01,02`` (numbers or full names), in series order."""
    if not only:
        return list(NOTEBOOKS)
    wanted = [w.strip() for w in (only.split(",") if isinstance(only, str) else only) if w.strip()]
    out = [notebook_name(w) for w in wanted]
    return [n for n in NOTEBOOKS if n in out]


def parse_sets(pairs: list[str] | None) -> dict:
    """``["epochs=3", "augment=false"]`` -> ``{"epochs": "3", "augment": "false"}``; the
    profile turns each value into its field's type (``none`` sets a field to None)."""
    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set {pair!r}: write KEY=VALUE, e.g. --set epochs=3")
        out[key.strip()] = value.strip()
    return out


def _failure_message(name: str, out_path: Path, err: Exception) -> str:
    """Notebook, cell and error of a papermill failure, in three lines."""
    cell = getattr(err, "exec_count", None)
    ename = getattr(err, "ename", type(err).__name__)
    evalue = getattr(err, "evalue", str(err))
    return (f"notebook {name} failed in cell [{cell}]: {ename}: {evalue}\n"
            f"executed copy with the full traceback: {out_path}")


def run_series(profile: str = "smoke", *, data: str | None = None, only=None,
               out: str | Path | None = None, overrides: dict | None = None,
               force: bool = False, timeout: int | None = None, progress: bool = True
               ) -> RunResult:
    """Execute the notebooks in order; stop at the first failure.

    Returns:
        A :class:`RunResult`; ``failed`` names the notebook that failed (None if all ran).
    """
    import papermill as pm
    from tqdm.auto import tqdm

    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}: use one of {', '.join(PROFILES)}")
    names = select(only)
    run = RunDir(out or default_run_dir(profile)).ensure()
    nb_dir = project_root() / "notebooks"
    if data and data not in ("auto", "synthetic", "kaggle"):
        data = str(Path(data).expanduser().resolve())  # notebooks run with cwd=notebooks/
    params = {"profile": profile, "data": data or "auto", "run_dir": str(run.root),
              "overrides": dict(overrides or {}), "force": bool(force)}
    seconds = run.run_times()
    bar = tqdm(names, desc=f"skinlib run ({profile})", unit="notebook", disable=not progress)
    for name in bar:
        bar.set_postfix_str(name)
        src = nb_dir / f"{name}.ipynb"
        if not src.exists():
            raise FileNotFoundError(f"{src} is missing: is this a full checkout of skinlib?")
        dst = run.notebooks / f"{name}.ipynb"
        t0 = time.perf_counter()
        try:
            pm.execute_notebook(str(src), str(dst), parameters=params, kernel_name="python3",
                                cwd=str(nb_dir), progress_bar=False,
                                execution_timeout=timeout)
        except Exception as err:  # papermill wraps the cell error; report it, stop the series
            seconds[name] = round(time.perf_counter() - t0, 1)
            run.write_run_times(seconds)
            bar.close()
            return RunResult(run.root, seconds, failed=name,
                             message=_failure_message(name, dst, err))
        seconds[name] = round(time.perf_counter() - t0, 1)
        run.write_run_times(seconds)
    bar.close()
    return RunResult(run.root, seconds)
