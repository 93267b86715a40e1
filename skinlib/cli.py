"""``python -m skinlib``: run the series, classify images, monitor drift, check a dataset,
benchmark."""

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
    r.add_argument("--param", dest="params", action="append", default=[], metavar="NAME=VALUE",
                   help="a notebook parameter of the selected notebooks, value as JSON, e.g. "
                        "--only 08 --param 'held_out=[\"rosendahl\"]' (repeatable)")
    r.add_argument("--force", action="store_true", help="retrain what the run folder has done")
    r.add_argument("--timeout", type=int, default=None, help="seconds per cell (default none)")

    _add_predict(sub)
    _add_monitor(sub)

    d = sub.add_parser("data", help="dataset tools")
    dsub = d.add_subparsers(dest="data_command", required=True)
    dc = dsub.add_parser("check", help="validate a dataset folder")
    dc.add_argument("path")
    dc.add_argument("--dataset", default="ham10000", choices=("ham10000", "isic2019"))
    dc.add_argument("--json", action="store_true")

    _add_bench(sub)
    return p


def _add_bench(sub) -> None:
    """The ``bench`` command's subcommands and arguments."""
    b = sub.add_parser("bench", help="measure the input pipeline or training speed")
    bsub = b.add_subparsers(dest="bench_command", required=True)
    bp = bsub.add_parser("pipeline", help="images/s of the input pipeline vs the seed way")
    bp.add_argument("--data", required=True, help="dataset folder (or 'synthetic')")
    bp.add_argument("--size", type=int, action="append", default=None,
                    help="image width in px (repeatable; default 64, 128, 224)")
    bp.add_argument("--limit", type=int, default=None, help="use at most this many images")
    bp.add_argument("--epochs", type=int, default=3, help="epochs timed for the warm figure")
    bp.add_argument("--json", default=None, metavar="FILE")
    bpr = bsub.add_parser("predict", help="seconds of predict --gradcam on full-size JPEGs")
    bpr.add_argument("--model", default=None,
                     help="a .keras model (default: an untrained baseline CNN, 48x64 input)")
    bpr.add_argument("--n", type=int, default=20, help="images (600x450 JPEGs)")
    bpr.add_argument("--repeats", type=int, default=3)
    bpr.add_argument("--json", default=None, metavar="FILE")
    from skinlib.bench import TRAIN_MODELS  # numpy only: the parser stays quick

    bt = bsub.add_parser("train", help="training images/s of every model the series trains")
    bt.add_argument("--profile", choices=PROFILES, default="quick")
    bt.add_argument("--steps", type=int, default=20)
    bt.add_argument("--repeats", type=int, default=3,
                    help="timed runs per figure: the median is reported, with the range")
    bt.add_argument("--model", action="append", choices=TRAIN_MODELS, default=None,
                    help="a model to time (repeat the flag; default: all)")
    bt.add_argument("--arch", action="append", default=None,
                    help="a CNN architecture to time (repeat; default: the profile's, gap, gap1)")
    bt.add_argument("--mode", action="append", choices=("eager", "graph", "xla"), default=None,
                    help="a compile mode to time (repeat; default: graph and xla)")
    bt.add_argument("--precision", action="append", default=None,
                    help="a Keras dtype policy to time (repeat; default: float32 and this "
                         "machine's mixed one)")
    bt.add_argument("--data", default=None,
                    help="images the pipeline-fed runs read (default: a fake dataset)")
    bt.add_argument("--json", default=None, metavar="FILE")


def _add_predict(sub) -> None:
    """The ``predict`` command's arguments."""
    pr = sub.add_parser("predict", help="classify images with the model's decision rule, "
                        "input check and optional Grad-CAM overlays")
    pr.add_argument("images", nargs="+", help="JPEG/PNG files or folders")
    pr.add_argument("--model", required=True, help="a .keras model file written by skinlib")
    pr.add_argument("--gradcam", default=None, metavar="DIR", help="write overlays here")
    pr.add_argument("--json", action="store_true", help="print JSON")
    pr.add_argument("--csv", default=None, metavar="FILE",
                    help="write path, class, one probability per class, input_score, flagged")
    pr.add_argument("--show-argmax", action="store_true",
                    help="show the argmax class beside the decided one where they differ")
    pr.add_argument("--top", type=int, default=3)


def _add_monitor(sub) -> None:
    """The ``monitor`` command's arguments."""
    mo = sub.add_parser("monitor", help="is a batch of images like a run's validation images?")
    mo.add_argument("--model", required=True, help="a .keras model file written by skinlib")
    mo.add_argument("--reference", required=True, metavar="RUN", help="the model's run folder")
    mo.add_argument("--data", required=True, metavar="FOLDER", help="the new images")
    mo.add_argument("--json", default=None, metavar="FILE", help="write the report as JSON")
    mo.add_argument("--alpha", type=float, default=0.05, help="family-wise level (Bonferroni)")
    mo.add_argument("--permutations", type=int, default=2000, help="of the MMD test")
    mo.add_argument("--seed", type=int, default=0)


def _cmd_run(a) -> int:
    from skinlib.runner import parse_params, parse_sets, run_series

    result = run_series(a.profile, data=a.data, only=a.only, out=a.out,
                        overrides=parse_sets(a.sets), force=a.force, timeout=a.timeout,
                        params=parse_params(a.params))
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
    """Classify images with the model's card; print text or JSON, optionally write a CSV."""
    from skinlib.predict import format_text, predict_files, write_csv

    report = predict_files(a.model, list(a.images), gradcam_dir=a.gradcam, top=a.top)
    if report["warning"]:
        print(report["warning"], file=sys.stderr)
    print(json.dumps(report, indent=2) if a.json else format_text(report, a.show_argmax))
    if a.csv:  # a file the user named
        print(f"written: {write_csv(report, a.csv)}", file=sys.stderr if a.json else sys.stdout)
    return 0


def _cmd_monitor(a) -> int:
    """Test a folder of images against a run's reference; print the verdict, write the report."""
    from skinlib import monitor
    from skinlib.rundir import json_types

    if a.permutations < 1 or not 0 < a.alpha < 1:
        raise ValueError(f"--permutations {a.permutations} / --alpha {a.alpha}: give at least 1 "
                         "permutation and 0 < alpha < 1")
    report, reference, batch, card = monitor.monitor_folder(
        a.model, a.reference, a.data, n_perm=a.permutations, alpha=a.alpha, seed=a.seed)
    if report["warning"]:
        print(report["warning"], file=sys.stderr)
    paths = monitor.write_outputs(report, reference, batch, card, a.reference)
    print(monitor.format_report(report))
    print(f"written: {paths['report']}, {paths['figure']}")
    if a.json:  # a file the user named, beside the run folder's copy
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(json_types(report), indent=2) + "\n")
        print(f"written: {a.json}")
    return 0


def _cmd_bench(a) -> int:
    from skinlib import bench

    if a.bench_command == "pipeline":
        if a.limit is not None and a.limit < 1:
            raise ValueError(f"--limit {a.limit}: give a positive number of images")
        report = bench.bench_pipeline(a.data, tuple(a.size or bench.DEFAULT_SIZES),
                                      limit=a.limit, epochs=a.epochs)
        print(bench.format_pipeline(report))
    elif a.bench_command == "predict":
        from skinlib import predict

        report = predict.bench(a.model, n=a.n, repeats=a.repeats)
        print(predict.format_bench(report))
    else:  # argparse admits only pipeline and train
        if a.steps < 1 or a.repeats < 1:
            raise ValueError(f"--steps {a.steps} --repeats {a.repeats}: give at least 1 of each")
        report = bench.bench_train(a.profile, steps=a.steps, models=a.model or bench.TRAIN_MODELS,
                                   cnn_archs=a.arch, data=a.data, repeats=a.repeats,
                                   modes=tuple(a.mode or bench.MODES), precisions=a.precision)
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
    handlers = {"run": _cmd_run, "data": _cmd_data, "predict": _cmd_predict, "bench": _cmd_bench,
                "monitor": _cmd_monitor}
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
