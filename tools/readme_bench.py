"""Write the README's training-speed table from a ``bench train`` JSON (never by hand).

    python -m skinlib bench train --profile quick ... --json figures/bench_train_quick.json
    python tools/readme_bench.py figures/bench_train_quick.json "python -m skinlib bench train ..."

Replaces the block between ``<!-- bench-train:start -->`` and ``<!-- bench-train:end -->``.
"""

from __future__ import annotations

import json
import sys

from skinlib.rundir import project_root

START, END = "<!-- bench-train:start -->", "<!-- bench-train:end -->"


def _rate(r: dict | None) -> str:
    if not r:
        return "-"
    return f"error: {r['error'].split(':')[0]}" if "error" in r else f"{r['images_per_s']:,.0f}"


def table(report: dict) -> str:
    """One row per model: images/s in each precision and mode, fed by the pipeline, and the
    input-bound share of the step."""
    runs = [f"{p}_{m}" for p in report["precisions"] for m in ("graph", "xla")]
    head = ["model", "input", "batch", *[r.replace("_", " ") for r in runs],
            "pipeline-fed (float32 graph)", "input-bound share"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, res in report["results"].items():
        share = res.get("input_bound_share")
        cells = [f"`{name}`", "x".join(map(str, res["image_size"])), str(res["batch_size"]),
                 *[_rate(res.get(r)) for r in runs], _rate(res.get("pipeline")),
                 "-" if share is None else f"{share:.0%}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def section(report: dict, command: str) -> str:
    """The Markdown block: command, machine, the table."""
    m = report["machine"]
    gpu = m["gpu"] if isinstance(m["gpu"], str) else ", ".join(m["gpu"])
    return "\n".join([START, "", f"`{command}`: {report['steps']} timed steps after two warm-up "
                      f"steps, on {m['cpus']} CPU cores, {m['memory_gb']} GB, {gpu}, TensorFlow "
                      f"{m['tensorflow']}; training images/s (in-memory batches unless said):", "",
                      table(report), "", END])


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    report = json.loads(open(argv[0]).read())
    readme = project_root() / "README.md"
    text = readme.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"{readme} has no {START} ... {END} block")
    head, rest = text.split(START, 1)
    readme.write_text(head + section(report, argv[1]) + rest.split(END, 1)[1])
    print(f"README training-speed table updated from {argv[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
