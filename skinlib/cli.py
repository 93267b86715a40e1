"""``python -m skinlib``: run the series, classify images, check a dataset, benchmark."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from skinlib.config import PROFILES


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m skinlib", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="execute the notebooks headless with papermill")
    r.add_argument("--profile", choices=PROFILES, default="smoke")
    r.add_argument("--data", default=None,
                   help="auto | synthetic | kaggle | PATH (smoke: synthetic; else auto)")
    r.add_argument("--only", default=None, help="notebooks to run, e.g. 01,02")
    r.add_argument("--out", default=None, help="run folder (default runs/<profile>)")
    r.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="change a profile field, e.g. --set epochs=3 (repeatable)")
    r.add_argument("--force", action="store_true", help="retrain what the run folder has done")
    r.add_argument("--timeout", type=int, default=None, help="seconds per cell (default none)")

    pr = sub.add_parser("predict", help="classify images, optionally with Grad-CAM overlays")
    pr.add_argument("images", nargs="+", help="JPEG/PNG files")
    pr.add_argument("--model", required=True, help="a .keras model file written by skinlib")
    pr.add_argument("--gradcam", default=None, metavar="DIR", help="write overlays here")
    pr.add_argument("--json", action="store_true", help="print JSON")
    pr.add_argument("--top", type=int, default=3)

    d = sub.add_parser("data", help="dataset tools")
    dsub = d.add_subparsers(dest="data_command", required=True)
    dc = dsub.add_parser("check", help="validate a dataset folder")
    dc.add_argument("path")
    dc.add_argument("--dataset", default="ham10000", choices=("ham10000", "isic2019"))
    dc.add_argument("--json", action="store_true")

    b = sub.add_parser("bench", help="measure the input pipeline or training speed")
    bsub = b.add_subparsers(dest="bench_command", required=True)
    bp = bsub.add_parser("pipeline", help="images/s of the input pipeline vs the seed way")
    bp.add_argument("--data", required=True, help="dataset folder (or 'synthetic')")
    bp.add_argument("--size", type=int, action="append", default=None,
                    help="image width in px (repeatable; default 64, 128, 224)")
    bp.add_argument("--limit", type=int, default=None, help="use at most this many images")
    bp.add_argument("--epochs", type=int, default=3, help="epochs timed for the warm figure")
    bp.add_argument("--json", default=None, metavar="FILE")
    bt = bsub.add_parser("train", help="training images/s of the baseline CNN and ResNet50")
    bt.add_argument("--profile", choices=PROFILES, default="quick")
    bt.add_argument("--steps", type=int, default=20)
    bt.add_argument("--json", default=None, metavar="FILE")
    return p


def _cmd_run(a) -> int:
    from skinlib.runner import parse_sets, run_series

    result = run_series(a.profile, data=a.data, only=a.only, out=a.out,
                        overrides=parse_sets(a.sets), force=a.force, timeout=a.timeout)
    for name, s in result.seconds.items():
        print(f"  {name:32s} {s:8.1f} s")
    if result.failed:
        print(result.message, file=sys.stderr)
        return 1
    print(f"done: {result.run_dir}")
    return 0


def _cmd_data(a) -> int:
    from skinlib.data import check_dataset, format_report

    report = check_dataset(a.path, dataset=a.dataset)
    print(json.dumps(report, indent=2, default=str) if a.json else format_report(report))
    return 0 if report["ok"] else 1


def _cmd_predict(a) -> int:
    from skinlib.predict import format_text, predict_files

    report = predict_files(a.model, list(a.images), gradcam_dir=a.gradcam, top=a.top)
    print(json.dumps(report, indent=2) if a.json else format_text(report))
    return 0


def _cmd_bench(a) -> int:
    from skinlib import bench

    if a.bench_command == "pipeline":
        if a.limit is not None and a.limit < 1:
            raise ValueError(f"--limit {a.limit}: give a positive number of images")
        report = bench.bench_pipeline(a.data, tuple(a.size or bench.DEFAULT_SIZES),
                                      limit=a.limit, epochs=a.epochs)
        print(bench.format_pipeline(report))
    else:  # argparse admits only pipeline and train
        if a.steps < 1:
            raise ValueError(f"--steps {a.steps}: give at least 1 step")
        report = bench.bench_train(a.profile, steps=a.steps)
        print(bench.format_train(report))
    if a.json:  # a file the user named, not a run-folder artifact
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(report, indent=2) + "\n")
        print(f"written: {a.json}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code. Expected errors print one line, no traceback."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    a = _parser().parse_args(argv)
    handlers = {"run": _cmd_run, "data": _cmd_data, "predict": _cmd_predict, "bench": _cmd_bench}
    try:
        return handlers[a.command](a)
    except (FileNotFoundError, ValueError, PermissionError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except Exception as err:
        if type(err).__module__.startswith("skinlib."):  # our own errors carry the way out
            print(f"error: {err}", file=sys.stderr)
            return 2
        raise
