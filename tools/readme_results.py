"""Write the README's results section from a finished run folder (never by hand).

    python tools/readme_results.py runs/quick "python -m skinlib run --profile quick --data ../shared/data" [...]
    python tools/readme_results.py --block NAME runs/other "python -m skinlib run ..." [...]

Every argument after the run folder is one command, runnable as written, that made the run (in
order). Copies the key figures (no patient images) to ``figures/`` with a ``<profile>_`` prefix,
writes ``figures/<profile>_summary.md`` and the run record ``skinlib/run_records/<profile>.json``
(commands, wall time per notebook, machine, device, versions; notebooks print their expected run
time from it), and replaces the block between ``<!-- results:start -->`` and
``<!-- results:end -->`` in README.md.

``--block NAME`` writes a second run (e.g. one with another CNN) into the block between
``<!-- results-NAME:start -->`` and ``<!-- results-NAME:end -->``, with ``NAME_`` as the figure
prefix; it adds the notebooks the profile's run record lacks to that record (with its commands),
so run the main block first.
"""

from __future__ import annotations

import json
import platform
import shutil
import sys

import pandas as pd

from skinlib import leakage, results, shift
from skinlib.notebook import records_dir
from skinlib.rundir import RunDir, project_root

# (figure, one-line caption): the figures that tell the story, in reading order; a figure the
# run did not make is left out (and its old copy under figures/ deleted).
FIGURES = [
    ("01_examples", "Random example images of each class (notebook 01; HAM10000, CC BY-NC 4.0, "
                    "Tschandl et al. 2018)."),
    ("01_class_counts", "Images per class: the imbalance every metric below has to face."),
    ("02_confusion_matrix", "The baseline CNN's confusion matrix on the test split, row-normalised."),
    ("02_reliability", "Reliability of the baseline's probabilities: confidence against accuracy."),
    ("03_gan_vs_real", "GAN samples beside real images of the class and their nearest "
                       "training neighbours."),
    ("03_kid_vs_floor", "Each class's KID against the real-vs-real floor of the same sizes."),
    ("04_per_class_recall", "Per-class recall of 04's three balancing arms (first seed of each)."),
    ("07_cams_correct", "Grad-CAM overlays on correctly classified test images."),
    ("07_randomisation", "Grad-CAM after randomising the top layers: map similarity against the "
                         "null of two independently initialised models."),
    ("08_per_class_recall", "Held-out image source (08): recall on unseen sources vs the "
                            "in-distribution test split."),
    ("09_detection", "Drift monitor (09): share of flagged batches against corruption "
                     "strength, with the false-alarm rate."),
    ("10_per_class_recall", "Image + metadata (10) against the image-only baseline, per class."),
    ("11_shap_gradcam_correct", "SHAP (Partition, superpixel-like rectangles) beside Grad-CAM on "
                                "the same images (11)."),
    ("12_leakage", "Leakage (12): the same model on its leaky image-level test set and on unseen "
                   "lesions."),
    ("12_metric_bars", "Every model's headline metrics with their lesion-level 95% CIs."),
]
START, END = "<!-- results:start -->", "<!-- results:end -->"


def _machine(device: str) -> str:
    import os

    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} CPU cores, {mem:.0f} GB RAM, {device} ({platform.machine()})"


def markers(block: str | None) -> tuple[str, str]:
    """The README markers of the main results block or of the block ``block``."""
    if not block:
        return START, END
    if not block.replace("_", "").isalnum():
        raise SystemExit(f"--block {block!r}: use letters, digits and _ only")
    return f"<!-- results-{block}:start -->", f"<!-- results-{block}:end -->"


def settings(used: dict) -> dict:
    """The profile fields a run changed (``--set``) from its profile's defaults."""
    from skinlib.config import get_profile

    default = json.loads(json.dumps(get_profile(used["name"]).to_dict()))
    return {k: v for k, v in used.items() if k in default and default[k] != v}


def _record(env: dict, commands: list[str], times: dict, block: str | None) -> dict:
    """The run record (written to ``skinlib/run_records``); a block adds to the profile's.

    A block's notebooks that the main run lacks join ``seconds_per_notebook`` (what notebooks
    print as their expected time); ``blocks[<block>]`` keeps its commands and those notebooks,
    so writing the block again replaces them.
    """
    device = env.get("device", "device not recorded")
    path = records_dir() / f"{env['profile']['name']}.json"
    if block and path.exists():
        record = json.loads(path.read_text())
        blocks = record.setdefault("blocks", {})
        earlier = set(blocks.get(block, {}).get("notebooks", []))
        base = {k: v for k, v in record["seconds_per_notebook"].items() if k not in earlier}
        new = {k: v for k, v in times.items() if k not in base}
        blocks[block] = {"commands": commands, "notebooks": list(new)}
        record["seconds_per_notebook"] = {**base, **new}
        record["total_minutes"] = round(sum(record["seconds_per_notebook"].values()) / 60, 1)
    else:
        record = {"commands": commands, "seconds_per_notebook": times,
                  "total_minutes": round(sum(times.values()) / 60, 1),
                  "settings": settings(env["profile"]),
                  "machine": _machine(device), "device": device, "versions": env["versions"],
                  "catalog_sha256": env["catalog_sha256"]}
    records_dir().mkdir(exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n")
    return record


def build(run_dir: str, commands: list[str], block: str | None = None) -> str:
    """The Markdown section; also writes the files under figures/."""
    run = RunDir(run_dir)
    out = project_root() / "figures"
    out.mkdir(exist_ok=True)
    env = run.read_record("logs/environment.json")
    profile = env["profile"]["name"]
    prefix = block or profile
    times = dict(sorted(run.work_times().items()))  # series order
    for old in out.glob(f"{prefix}_*.png"):  # never show a figure of an earlier run
        old.unlink()
    copied = []
    for name, caption in FIGURES:
        if block and name.startswith("01_"):  # the data's figures: shown by the main block
            continue
        hits = sorted(run.figures.glob(f"{name}*.png"))
        if hits:
            dst = out / f"{prefix}_{hits[0].name}"
            shutil.copyfile(hits[0], dst)
            copied.append((dst.name, caption))
    found = results.collect(run)
    data = next(iter(found.values())).get("data", env["data"]) if found else env["data"]
    table = results.formatted(results.summary_table(found))
    summary_md = results.to_markdown(table)
    (out / f"{prefix}_summary.md").write_text(summary_md + "\n")
    record = _record(env, commands, times, block)
    leak_path = run.metrics / "12_leakage.json"
    start, end = markers(block)
    total = round(sum(times.values()) / 60, 1)
    lines = [start, "",
             "Made by `tools/readme_results.py` from a real run, with these commands:", "",
             "```bash", *commands, "```", "",
             f"Machine: {record['machine']}, TensorFlow {env['versions'].get('tensorflow')}. "
             f"Data: {data}, "
             f"{env['n_images']:,} images, lesion-grouped split, seed "
             f"{env['profile']['seed']}; every model is tested once on the same "
             f"{_n_test(run)} test images. 95% lesion-level bootstrap CIs in brackets; the "
             "columns say each row's epochs, images seen, decision rule and seeds.", "",
             summary_md, "",
             "Wall time per notebook (minutes): " + ", ".join(
                 f"{k[:2]} {v / 60:.1f}" for k, v in times.items())
             + f"; total {total} min (each notebook's longest execution in the folder, the one "
             "that trained its models; an execution that loads them again is quicker; the "
             "table's `train s` column is the training time alone)."
             + (f" Profile fields changed from {profile}'s defaults: "
                + ", ".join(f"`{k}={v!r}`" for k, v in record["settings"].items()) + "."
                if record.get("settings") else ""), ""]
    if leak_path.exists():
        exp = run.read_metrics("12_leakage")
        lines += ["Leakage check (notebook 12): the same CNN on an image-level split vs the "
                  "lesion-grouped split; MedMNIST's published DermaMNIST rows are quoted, "
                  "not measured here.", "", results.to_markdown(leakage.table(exp)), "",
                  *[f"- {line}" for line in leakage.summary(exp)], ""]
    shifted = shift.load_runs(run)
    if shifted:
        lines += ["Held-out image sources (notebook 08): the baseline recipe trained without one "
                  "source, tested on the shared test split minus that source and on every image "
                  "of it; lesion-level 95% CIs.", "",
                  results.to_markdown(shift.table(shifted)), ""]
    lines += ["Reading the table (generated from the same numbers):", "", *_reading(found), ""]
    verdicts = _verdicts(run)
    if verdicts:
        lines += ["Paired comparisons (the same test lesions for both models, over the seeds both "
                  "have; generated from each notebook's metrics JSON):", "", *verdicts, ""]
    for name, caption in copied:
        lines += [f"![{caption}](figures/{name})", f"*{caption}*", ""]
    lines += [end]
    return "\n".join(lines)


def _reading(found: dict[str, dict]) -> list[str]:
    """One bullet per model: its lead figures with CIs, seeds and rule; never typed by hand."""
    out = []
    for name, d in found.items():
        lo, hi = (d.get("ci95") or {}).get("balanced_accuracy") or (None, None)
        ci = f" (95% CI {lo:.3f}-{hi:.3f})" if lo is not None else ""
        out.append(f"- `{name}`: balanced accuracy {d['balanced_accuracy']:.3f}{ci}, macro AUC "
                   f"{d['macro_auc']:.3f}, decision `{d.get('decision')}`, "
                   f"{d.get('repeats', 1)} seed(s), {d.get('epochs_run', '?')} of "
                   f"{d.get('epochs_max', '?')} epochs.")
    if found:
        out.append("- Paired comparisons (same test lesions, over seeds) and their verdicts are in "
                   "each notebook's metrics JSON; unpaired CIs in this table do not decide them.")
    return out


def _comparisons(obj, key: str = ""):
    """``(key, comparison)`` for every :func:`skinlib.metrics.compare` dict inside ``obj``."""
    if isinstance(obj, dict):
        if "verdict_rule" in obj and "balanced_accuracy" in obj:
            yield key, obj
            return
        for k, v in obj.items():
            yield from _comparisons(v, k)


def _verdicts(run: RunDir) -> list[str]:
    """One bullet per paired comparison of the run: difference, CI, seeds and verdict."""
    from skinlib.evaluation import verdict_line

    out = []
    for path in sorted(run.metrics.glob("*.json")):
        for key, c in _comparisons(json.loads(path.read_text())):
            if not (isinstance(c.get("a"), str) and isinstance(c.get("b"), str)):
                raise ValueError(f"{path}: comparison {key!r} does not name its models (a, b): "
                                 "pass names= to metrics.compare or name_b= to compare_to, "
                                 "and run the notebook again")
            out.append(f"- {verdict_line(c)}")
    return out


def main(argv: list[str]) -> int:
    """Replace the README's results block."""
    block = None
    if argv[:1] == ["--block"]:
        block, argv = (argv[1] if len(argv) > 1 else ""), argv[2:]
        markers(block or "?")
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    start, end = markers(block)
    readme = project_root() / "README.md"
    text = readme.read_text()
    if start not in text or end not in text:
        raise SystemExit(f"{readme} has no {start} ... {end} block")
    section = build(argv[0], argv[1:], block)
    head, rest = text.split(start, 1)
    readme.write_text(head + section + rest.split(end, 1)[1])
    print(f"README results updated from {argv[0]}")
    return 0


def _n_test(run: RunDir) -> int:
    return int((pd.read_csv(run.splits_csv)["split"] == "test").sum())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
