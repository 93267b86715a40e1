"""``RUN/index.html``: a run you can browse from ``file://``.

The page holds the results table with its CIs, then one section per notebook: its status and
wall time, a link to its executed copy rendered as HTML (nbconvert, no JavaScript, images
inline), thumbnails of its figures linking to the full-size files, and its headline metrics.
Everything it links to lies inside the run folder; nothing is fetched from the network.
"""

from __future__ import annotations

import html
from pathlib import Path

from skinlib import results
from skinlib.rundir import RunDir

THUMB_WIDTH = 320
CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:72em;color:#222;padding:0 1em}
table{border-collapse:collapse;font-size:0.9em;margin:0.5em 0}
th,td{border:1px solid #ccc;padding:0.25em 0.5em;text-align:left}
th{background:#f2f2f2} .ok{color:#0a6b2d} .failed{color:#b00020} .missing{color:#777}
.thumbs img{vertical-align:top}
section{border-top:1px solid #ddd;margin-top:1.5em;padding-top:0.5em}
.thumbs a{display:inline-block;margin:0 0.5em 0.5em 0} .thumbs img{border:1px solid #ccc}
"""


def _status(run: RunDir, name: str, statuses: dict) -> tuple[str, float | None, str]:
    """(status, seconds, message) of one notebook: from the runner's record, else the files."""
    rec = statuses.get(name, {})
    if rec:
        return rec.get("status", "ok"), rec.get("seconds"), rec.get("message", "")
    return ("ok" if (run.notebooks / f"{name}.ipynb").exists() else "not run"), None, ""


def render_notebook(src: Path, dst: Path) -> Path:
    """An executed notebook as one static HTML file (images inline, no scripts)."""
    import nbconvert
    import nbformat

    nb = nbformat.read(src, as_version=4)
    body, _ = nbconvert.HTMLExporter(template_name="basic").from_notebook_node(nb)
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(_page(src.stem, f"<p><a href='../index.html'>back to the run</a></p>{body}"))
    return dst


def thumbnail(src: Path, dst: Path, width: int = THUMB_WIDTH) -> Path:
    """A small PNG copy of a figure (the page links it to the full-size file)."""
    from PIL import Image

    dst.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(src) as im:
        scale = min(1.0, width / im.width)
        im.convert("RGB").resize((max(1, round(im.width * scale)),
                                  max(1, round(im.height * scale)))).save(dst)
    return dst


def _headline(models: dict[str, dict], prefix: str) -> str:
    """Balanced accuracy and macro AUC (with CIs) of a notebook's models, as an HTML table."""
    rows = {k: v for k, v in models.items() if k.startswith(prefix)}
    if not rows:
        return "<p class='missing'>no model metrics</p>"
    table = results.formatted(results.summary_table(rows))
    keep = [c for c in table.columns if c in ("model", "balanced accuracy", "macro AUC",
                                              "decision")]
    return table[keep].to_html(index=False, escape=True)


def _section(run: RunDir, name: str, statuses: dict, models: dict,
             work: dict | None = None) -> str:
    status, seconds, message = _status(run, name, statuses)
    longest = (work or {}).get(name)
    parts = [f"<section id='nb{name[:2]}'><h2>{html.escape(name)}</h2>",
             f"<p>status: <b class='{status.replace(' ', '')}'>{status}</b>"
             + (f"; wall time {seconds / 60:.1f} min" if seconds is not None else "")
             + (f" (longest execution in this folder, the one that trained its models: "
                f"{longest / 60:.1f} min)" if seconds is not None and longest
                and longest > seconds else "") + "</p>"]
    if message:
        parts.append(f"<pre>{html.escape(message)}</pre>")
    executed = run.notebooks / f"{name}.ipynb"
    if executed.exists():
        rendered = render_notebook(executed, run.root / "html" / f"{name}.html")
        parts.append(f"<p><a href='{rendered.relative_to(run.root).as_posix()}'>"
                     f"executed notebook</a></p>")
    thumbs = []
    for fig in sorted(run.figures.glob(f"{name[:2]}_*.png")):
        small = thumbnail(fig, run.root / "html" / "thumbs" / fig.name)
        thumbs.append(f"<a href='figures/{html.escape(fig.name)}'><img alt='{html.escape(fig.stem)}'"
                      f" title='{html.escape(fig.stem)}' "
                      f"src='{small.relative_to(run.root).as_posix()}'></a>")
    if thumbs:
        parts.append("<div class='thumbs'>" + "".join(thumbs) + "</div>")
    parts.append(_headline(models, name[:3]))
    return "\n".join(parts) + "</section>"


def _page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>"
            f"{html.escape(title)}</title><style>{CSS}</style></head><body>{body}</body></html>\n")


def write_index(run_dir, notebooks, statuses: dict | None = None) -> Path:
    """Write ``RUN/index.html`` for the notebooks of a run and return its path.

    Args:
        run_dir: the run folder (a path or :class:`RunDir`).
        notebooks: notebook names in series order.
        statuses: name -> ``{"status", "seconds", "message"}`` as the runner recorded them;
            default ``RUN/logs/run_status.json`` if present.
    """
    run = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
    if statuses is None:
        statuses = run.read_record("logs/run_status.json") or {}
    models = results.collect(run) if run.metrics.is_dir() else {}
    table = (results.formatted(results.summary_table(models)).to_html(index=False)
             if models else "<p class='missing'>no model metrics yet</p>")
    toc = " · ".join(f"<a href='#nb{n[:2]}'>{html.escape(n)}</a>" for n in notebooks)
    env = run.read_record("logs/environment.json") or {}
    facts = (f"<p>profile <b>{html.escape(str(env.get('profile', {}).get('name', '?')))}</b>, "
             f"data {html.escape(str(env.get('data', '?')))}, "
             f"{env.get('n_images', '?')} images. Results: 95% CIs in brackets.</p>")
    work = run.work_times()
    body = (f"<h1>skinlib run: {html.escape(run.root.name)}</h1>{facts}<p>{toc}</p>"
            f"<h2>Results</h2>{table}"
            + "".join(_section(run, n, statuses, models, work) for n in notebooks))
    path = run.root / "index.html"
    path.write_text(_page(f"skinlib run {run.root.name}", body))
    return path


def links(index_html: Path) -> list[str]:
    """Every ``href`` and ``src`` of a page (what a test follows)."""
    from html.parser import HTMLParser

    found: list[str] = []

    class _Links(HTMLParser):
        def handle_starttag(self, tag, attrs):
            found.extend(v for k, v in attrs if k in ("href", "src") and v)

    _Links().feed(Path(index_html).read_text())
    return found
