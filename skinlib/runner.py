"""Run the notebook series headless with papermill, in order, into one run folder."""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from skinlib.config import NOTEBOOKS, PROFILES, notebook_name
from skinlib.report import write_index
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


def parse_params(pairs: list[str] | None) -> dict:
    """``["held_out=[\"rosendahl\"]", "n_batches=40"]`` -> notebook parameters: each value read
    as JSON (lists, numbers, true/false/null) or else kept as a string."""
    import json

    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip().isidentifier():
            raise ValueError(f"--param {pair!r}: write NAME=VALUE with a notebook parameter's "
                             f"name, e.g. --param 'held_out=[\"rosendahl\"]'")
        try:
            out[key.strip()] = json.loads(value)
        except ValueError:
            out[key.strip()] = value
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
               force: bool = False, timeout: int | None = None, progress: bool = True,
               params: dict | None = None) -> RunResult:
    """Execute the notebooks in order; stop at the first failure.

    ``params`` are papermill parameters of the selected notebooks beyond the run's own
    (e.g. 08's ``held_out``); a name the run's own parameters use is refused.

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
    # The data path is passed and recorded as the user gave it; notebooks run in the caller's
    # working directory, so a relative path means the same thing inside them.
    run_params = {"profile": profile, "data": data or "auto", "run_dir": str(run.root),
                  "overrides": dict(overrides or {}), "force": bool(force)}
    clash = sorted(set(params or {}) & set(run_params))
    if clash:
        raise ValueError(f"--param {clash[0]}: set it with its own option (--profile, --data, "
                         f"--out, --set, --force)")
    run_params.update(params or {})
    seconds, status = run.run_times(), run.read_record("logs/run_status.json") or {}
    bar = tqdm(names, desc=f"skinlib run ({profile})", unit="notebook", disable=not progress)
    failed, message = None, ""
    with _kernel_env(run_params):
        for name in bar:
            bar.set_postfix_str(name)
            t0 = time.perf_counter()
            message = _execute(pm, nb_dir / f"{name}.ipynb", run.notebooks / f"{name}.ipynb",
                               run_params, timeout)
            status[name] = {"status": "failed" if message else "ok",
                            "seconds": round(time.perf_counter() - t0, 1),
                            **({"message": message} if message else {})}
            seconds[name] = status[name]["seconds"]
            run.add_execution(name, seconds[name], status[name]["status"])
            run.write_record("logs/run_status.json", status)
            if message:
                failed = name
                break
    bar.close()
    write_index(run, NOTEBOOKS)
    return RunResult(run.root, seconds, failed=failed, message=message)


def _execute(pm, src: Path, dst: Path, params: dict, timeout: int | None) -> str:
    """Run one notebook with papermill; return "" or the failure message."""
    if not src.exists():
        raise FileNotFoundError(f"{src} is missing: is this a full checkout of skinlib?")
    try:
        pm.execute_notebook(str(src), str(dst), parameters=params, kernel_name="python3",
                            cwd=str(Path.cwd()), progress_bar=False, execution_timeout=timeout)
    except Exception as err:  # papermill wraps the cell error; report it, stop the series
        return _failure_message(src.stem, dst, err)
    return ""


@contextmanager
def _kernel_env(params: dict):
    """``SKINLIB_*`` set for the notebook kernels, so a notebook's setup cell (which runs
    before papermill's injected parameters) names the same profile, data and run folder."""
    keys = {"SKINLIB_PROFILE": params["profile"], "SKINLIB_DATA": params["data"],
            "SKINLIB_RUN_DIR": params["run_dir"]}
    saved = {k: os.environ.get(k) for k in keys}
    os.environ.update(keys)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
