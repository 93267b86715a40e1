"""RUN/index.html: the results table, one section per notebook, links that all resolve."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlparse

import nbformat
import numpy as np
from PIL import Image

from skinlib import metrics, report
from skinlib.rundir import RunDir


def _model_json(run: RunDir, name: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, 90)
    probs = rng.dirichlet(np.ones(3), 90)
    probs[np.arange(90), y] += 1.0
    probs /= probs.sum(1, keepdims=True)
    res = metrics.evaluate(y, probs, ["a", "b", "c"], n_bootstrap=50, seed=0)
    meta = dict(model=name, profile="smoke", data="synthetic", split="s", image_size=[8, 8],
                n_train=10, n_test=90, train_seconds=1.0)
    out = {**metrics.result_json(res, **meta), "kind": "model"}
    (run.metrics / f"{name}.json").write_text(json.dumps(out))


def _fake_run(tmp_path: Path) -> RunDir:
    run = RunDir(tmp_path / "run").ensure()
    _model_json(run, "02_baseline_cnn", 0)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# 02 · Baseline"),
                nbformat.v4.new_code_cell("print('hello')", outputs=[
                    nbformat.v4.new_output("stream", name="stdout", text="hello from 02\n")])]
    nbformat.write(nb, run.notebooks / "02_baseline_cnn.ipynb")
    Image.new("RGB", (900, 600), (200, 30, 30)).save(run.figures / "02_roc.png")
    (run.logs / "run_status.json").write_text(json.dumps({
        "01_eda": {"status": "ok", "seconds": 12.0},
        "02_baseline_cnn": {"status": "ok", "seconds": 90.0},
        "03_dcgan_minority": {"status": "failed", "seconds": 3.0,
                              "message": "notebook 03 failed in cell [4]: ValueError: boom"}}))
    return run


def test_index_links_resolve_and_show_results(tmp_path):
    run = _fake_run(tmp_path)
    names = ["01_eda", "02_baseline_cnn", "03_dcgan_minority", "04_gan_augmented_cnn"]
    page = report.write_index(run, names)
    text = page.read_text()
    links = report.links(page)
    assert links, "the page links nothing"
    for link in links:
        parsed = urlparse(link)
        assert parsed.scheme == "" and not parsed.netloc, f"external link {link}"
        if link.startswith("#"):
            assert f"id='{link[1:]}'" in text, link
            continue
        assert (page.parent / parsed.path).is_file(), f"broken link {link}"
    assert "figures/02_roc.png" in links
    assert "html/02_baseline_cnn.html" in links
    res = json.loads((run.metrics / "02_baseline_cnn.json").read_text())
    lo, hi = res["ci95"]["balanced_accuracy"]
    assert f"{res['balanced_accuracy']:.3f} ({lo:.3f}-{hi:.3f})" in text
    assert "ValueError: boom" in text and "class='failed'" in text
    assert "not run" in text  # 04 has neither a record nor an executed copy
    assert "hello from 02" in (run.root / "html" / "02_baseline_cnn.html").read_text()
    with Image.open(run.root / "html" / "thumbs" / "02_roc.png") as im:
        assert im.width == report.THUMB_WIDTH


def test_index_says_when_an_earlier_execution_did_the_work(tmp_path):
    """A re-run that loaded 02's models took 90 s; the execution that trained them, 900 s."""
    run = _fake_run(tmp_path)
    run.add_execution("02_baseline_cnn", 900.0)
    run.add_execution("02_baseline_cnn", 90.0)
    text = report.write_index(run, ["01_eda", "02_baseline_cnn"]).read_text()
    assert "wall time 1.5 min (longest execution in this folder, the one that trained its " \
           "models: 15.0 min)" in text
    assert text.count("longest execution") == 1  # 01 ran once
