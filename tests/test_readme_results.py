"""tools/readme_results.py: the README's verdict lines come from the run's comparison JSON."""

import sys
from pathlib import Path

import numpy as np
import pytest

from skinlib import metrics
from skinlib.rundir import RunDir

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import readme_results  # noqa: E402


def _comparison(shift: float, names=None):
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 20)
    groups = np.arange(60) // 2
    a = np.full((60, 3), 0.2)
    a[np.arange(60), y] = 0.6
    b = np.clip(a + rng.normal(0, shift, a.shape), 0.01, None)
    b /= b.sum(1, keepdims=True)
    return metrics.compare(y, a, b, ["x", "y", "z"], groups=groups, n_bootstrap=50, seed=0,
                           names=names)


def test_every_paired_comparison_becomes_a_line_naming_both_models(tmp_path):
    run = RunDir(tmp_path).ensure()
    named = _comparison(0.3, ("02_baseline_cnn", "06_resnet50"))
    run.write_metrics("06_resnet50", {"model": "06_resnet50", "vs_02_baseline_cnn": named},
                      kind="facts")
    run.write_metrics("05_experts_bma", {"comparisons": {
        "02_baseline_cnn": _comparison(0.0, ("02_baseline_cnn", "05_bma")),
        "05_bma_ts_vs_02_baseline_cnn": _comparison(0.1, ("02_baseline_cnn", "05_bma_ts"))}},
        kind="facts")
    lines = readme_results._verdicts(run)
    assert len(lines) == 3
    assert lines[0].startswith("- 05_bma − 02_baseline_cnn, balanced accuracy: +0.000")
    assert lines[1].startswith("- 05_bma_ts − 02_baseline_cnn, balanced accuracy:")
    assert lines[2].startswith("- 06_resnet50 − 02_baseline_cnn, balanced accuracy:")
    assert all("lesion-level" in line and "→" in line for line in lines)
    assert lines[0].endswith("05_bma is not distinguishable from 02_baseline_cnn")
    run.write_metrics("10_metadata_fusion", {"vs_image_only": _comparison(0.1)}, kind="facts")
    with pytest.raises(ValueError, match="'vs_image_only' does not name its models"):
        readme_results._verdicts(run)


def test_a_second_block_adds_its_notebooks_to_the_run_record(tmp_path, monkeypatch):
    import json

    monkeypatch.setattr(readme_results, "records_dir", lambda: tmp_path)
    env = {"profile": {"name": "quick"}, "versions": {"tensorflow": "x"}, "catalog_sha256": "h"}
    readme_results._record(env, ["run main"], {"01_eda": 20.0, "02_baseline_cnn": 600.0}, None)
    for seconds in (800.0, 900.0):  # writing the block again replaces it
        rec = readme_results._record(env, ["run sep"], {"02_baseline_cnn": 300.0,
                                                        "04_gan_augmented_cnn": seconds}, "sep")
    assert rec == json.loads((tmp_path / "quick.json").read_text())
    assert rec["seconds_per_notebook"] == {"01_eda": 20.0, "02_baseline_cnn": 600.0,
                                           "04_gan_augmented_cnn": 900.0}
    assert rec["commands"] == ["run main"]
    assert rec["blocks"] == {"sep": {"commands": ["run sep"],
                                     "notebooks": ["04_gan_augmented_cnn"]}}
    assert rec["total_minutes"] == 25.3
    assert readme_results.markers("sep") == ("<!-- results-sep:start -->",
                                             "<!-- results-sep:end -->")
    assert readme_results.markers(None) == (readme_results.START, readme_results.END)


def test_the_run_record_names_the_fields_a_run_changed(tmp_path, monkeypatch):
    """A run made with ``--set`` says so in the README and in every notebook's header time."""
    import json

    from skinlib import notebook
    from skinlib.config import get_profile

    used = json.loads(json.dumps(get_profile("quick", cnn_arch="sep", repeats=3).to_dict()))
    assert readme_results.settings(used) == {"cnn_arch": "sep", "repeats": 3}
    monkeypatch.setattr(readme_results, "records_dir", lambda: tmp_path)
    env = {"profile": used, "versions": {"tensorflow": "x"}, "catalog_sha256": "h"}
    rec = readme_results._record(env, ["run"], {"02_baseline_cnn": 600.0}, None)
    assert rec["settings"] == {"cnn_arch": "sep", "repeats": 3}
    monkeypatch.setattr(notebook, "run_record", lambda profile: rec)
    line = notebook.time_estimate("02_baseline_cnn", "quick")
    assert line.startswith("10.0 min in the recorded quick run with cnn_arch='sep', repeats=3")
