"""Write the README's speed tables from ``bench`` JSON (never by hand).

    python -m skinlib bench train --profile quick ... --json figures/bench_train_quick.json
    python tools/readme_bench.py figures/bench_train_quick.json "python -m skinlib bench train ..."
    python -m skinlib bench pipeline ... --json figures/bench_pipeline.json
    python tools/readme_bench.py figures/bench_pipeline.json "python -m skinlib bench pipeline ..."

A ``bench train`` report replaces the block between ``<!-- bench-train:start -->`` and
``<!-- bench-train:end -->``; a ``bench pipeline`` report (several sizes) the block between
``<!-- bench-pipeline:start -->`` and ``<!-- bench-pipeline:end -->``: a row per way, a column per
size, and the ratios the goals are stated in.
"""

from __future__ import annotations

import json
import sys

from skinlib.rundir import project_root

START, END = "<!-- bench-train:start -->", "<!-- bench-train:end -->"
PIPE_START, PIPE_END = "<!-- bench-pipeline:start -->", "<!-- bench-pipeline:end -->"
# ratio -> what it measures, in the words of the README's goals
PIPE_RATIOS = {
    "skinlib_uint8 / imagedatagenerator": "feeding path (cached uint8 batches) against the seed "
                                          "way's ImageDataGenerator",
    "skinlib_warm / imagedatagenerator": "warm epoch with augmentation on the CPU against "
                                         "ImageDataGenerator",
    "cache_build / decode_limit": "cold epoch (decode, area resize, write the cache) against the "
                                  "decode limit",
    "skinlib_cold / decode_limit": "first training epoch (cold cache, augmentation, float32) "
                                   "against the decode limit",
    "decode_area / decode_limit": "the cache's area resize against bilinear, both parallel",
    "decode_antialias / decode_limit": "the antialiased bilinear resize (the cache's until this "
                                       "version) against bilinear",
}


def _rate(r: dict | None) -> str:
    if not r:
        return "-"
    return f"error: {r['error'].split(':')[0]}" if "error" in r else f"{r['images_per_s']:,.0f}"


def table(report: dict) -> str:
    """One row per model: images/s in each precision and mode, fed by the pipeline, and the
    input-bound share of the step."""
    modes = [m for m in ("graph", "xla", "eager")
             if any(f"{p}_{m}" in res for p in report["precisions"]
                    for res in report["results"].values())] or ["graph"]
    runs = [f"{p}_{m}" for p in report["precisions"] for m in modes]
    head = ["model", "input", "batch", *[r.replace("_", " ") for r in runs],
            "in memory, paired (float32 graph)", "pipeline-fed", "input-bound share"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, res in report["results"].items():
        share = res.get("input_bound_share")
        cells = [f"`{name}`", "x".join(map(str, res["image_size"])), str(res["batch_size"]),
                 *[_rate(res.get(r)) for r in runs], _way(res.get("memory")),
                 _way(res.get("pipeline")), "-" if share is None else f"{share:.0%}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def section(report: dict, command: str) -> str:
    """The Markdown block: command, machine, the table."""
    m = report["machine"]
    gpu = m["gpu"] if isinstance(m["gpu"], str) else ", ".join(m["gpu"])
    repeats = report.get("repeats", 1)
    return "\n".join([START, "", f"`{command}`: median training images/s of {repeats} timed "
                      f"runs of {report['steps']} steps (range in brackets where shown) after "
                      f"two warm-up steps, on {m['cpus']} CPU cores, {m['memory_gb']} GB, {gpu}, "
                      f"TensorFlow {m['tensorflow']}; in-memory batches unless said; the paired "
                      "columns time one model on in-memory and pipeline batches in turn, and the "
                      "input-bound share is 1 - pipeline-fed / in memory, fastest run of each:",
                      "",
                      table(report), "", END])


def _way(r: dict | None) -> str:
    if not r:
        return "-"
    if "error" in r:
        return f"error: {r['error'].split(':')[0]}"
    lo, hi = r["images_per_s_range"]
    return f"{r['images_per_s']:,.0f} ({lo:,.0f}-{hi:,.0f})"


def pipeline_section(report: dict, command: str) -> str:
    """The Markdown block of a ``bench pipeline`` report: command, machine, a row per way (the
    work it does) with median images/s (range) per size, then each goal's ratio per size."""
    runs = report["runs"]
    m = report["machine"]
    gpu = m["gpu"] if isinstance(m["gpu"], str) else ", ".join(m["gpu"])
    sizes = ["x".join(map(str, r["image_size"])) for r in runs]
    head = ["way (work done)", *sizes]
    lines = [PIPE_START, "", f"`{command}`: {runs[0]['n_images']:,} images, batch "
             f"{runs[0]['batch_size']}, median images/s of {runs[0]['epochs']} timed epochs "
             f"(range) after a warm-up batch, on {m['cpus']} CPU cores, {m['memory_gb']} GB, "
             f"{gpu}, TensorFlow {m['tensorflow']}:", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    ways = list(dict.fromkeys(w for r in runs for w in r["results"]))
    for way in ways:
        work = next(r["results"][way].get("work") for r in runs if way in r["results"])
        lines.append("| " + " | ".join([f"`{way}`: {work}",
                                        *[_way(r["results"].get(way)) for r in runs]]) + " |")
    lines += ["", "Ratios (" + ", ".join(sizes) + "):", ""]
    for key, meaning in PIPE_RATIOS.items():
        vals = [r["ratios"].get(key) for r in runs]
        if any(v is not None for v in vals):
            shown = ", ".join("-" if v is None else f"{v:.2f}x" for v in vals)
            lines.append(f"- {meaning}: {shown}")
    return "\n".join([*lines, "", PIPE_END])


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    report = json.loads(open(argv[0]).read())
    if "runs" in report:
        start, end, block = PIPE_START, PIPE_END, pipeline_section(report, argv[1])
    else:
        start, end, block = START, END, section(report, argv[1])
    readme = project_root() / "README.md"
    text = readme.read_text()
    if start not in text or end not in text:
        raise SystemExit(f"{readme} has no {start} ... {end} block")
    head, rest = text.split(start, 1)
    readme.write_text(head + block + rest.split(end, 1)[1])
    print(f"README speed table updated from {argv[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
