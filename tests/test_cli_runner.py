"""The command line: run (papermill), data check, and their failure messages."""

import json
import subprocess
import sys

import pytest

from skinlib import cli, runner
from skinlib.config import NOTEBOOKS
from skinlib.rundir import RunDir


def test_select_notebooks():
    assert runner.select("02,1") == ["01_eda", "02_baseline_cnn"]
    assert runner.select(["12_results", "3"]) == ["03_dcgan_minority", "12_results"]
    assert runner.select(None) == list(NOTEBOOKS)
    numbers = [int(n[:2]) for n in NOTEBOOKS]
    assert numbers == sorted(set(numbers)) and NOTEBOOKS[-1].endswith("_results")
    with pytest.raises(ValueError, match="names no notebook"):
        runner.select("99")


def test_failure_names_notebook_cell_and_error(tmp_path, monkeypatch):
    """A notebook that raises stops the series with notebook, cell, error and executed copy."""
    import nbformat

    nb_dir = tmp_path / "proj" / "notebooks"
    nb_dir.mkdir(parents=True)
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell("profile = 'x'\ndata = None\nrun_dir = None\n"
                                       "overrides = {}\nforce = False")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("x = 1"),
                nbformat.v4.new_code_cell("raise ValueError('planted failure')")]
    for name in ("01_eda", "02_baseline_cnn"):
        nbformat.write(nb, nb_dir / f"{name}.ipynb")
    monkeypatch.setattr(runner, "project_root", lambda: tmp_path / "proj")
    res = runner.run_series("smoke", only="01,02", out=tmp_path / "run", progress=False)
    assert res.failed == "01_eda"
    assert "01_eda" in res.message and "ValueError: planted failure" in res.message
    assert "cell [" in res.message and str(tmp_path / "run" / "notebooks") in res.message
    assert "02_baseline_cnn" not in res.seconds  # the series stopped
    assert RunDir(tmp_path / "run").run_times() == res.seconds
    assert [(e["notebook"], e["status"]) for e in RunDir(tmp_path / "run").run_history()] == [
        ("01_eda", "failed")]


def test_data_check_cli_json(fake_root, capsys):
    code = cli.main(["data", "check", str(fake_root), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["ok"]
    assert {"n_images", "n_lesions", "classes", "duplicates", "problems"} <= set(out)
    assert out["n_images"] == sum(out["classes"].values()) == 420


def test_data_check_cli_missing_folder(tmp_path, capsys):
    code = cli.main(["data", "check", str(tmp_path / "nope")])
    err = capsys.readouterr()
    assert code != 0 and "nope" in (err.out + err.err)


@pytest.mark.realdata
def test_data_check_real_data(shared_data):
    """The acceptance check of issue 3: exit 0 with the real counts (ISIC/HMNIST CSVs beside)."""
    proc = subprocess.run([sys.executable, "-m", "skinlib", "data", "check", str(shared_data),
                           "--json"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    assert out["n_images"] == 10015 and out["n_lesions"] == 7470
    assert out["classes"] == {"nv": 6705, "mel": 1113, "bkl": 1099, "bcc": 514,
                              "akiec": 327, "vasc": 142, "df": 115}


def test_param_values_are_json_or_strings_and_never_replace_the_run_options(tmp_path):
    from skinlib.runner import parse_params, run_series

    assert parse_params(['held_out=["rosendahl"]', "n_batches=40", "model_name=02_x",
                         "force_cpu=true"]) == {"held_out": ["rosendahl"], "n_batches": 40,
                                                "model_name": "02_x", "force_cpu": True}
    with pytest.raises(ValueError, match="NAME=VALUE"):
        parse_params(["held out=1"])
    with pytest.raises(ValueError, match="--param profile"):
        run_series("smoke", only="01", out=tmp_path / "r", params={"profile": "full"})


def test_params_reach_the_selected_notebooks(tmp_path, monkeypatch):
    from skinlib import runner

    seen = {}
    monkeypatch.setattr(runner, "_execute", lambda pm, src, dst, params, timeout:
                        seen.setdefault(src.stem, dict(params)) and "")
    monkeypatch.setattr(runner, "write_index", lambda *a: None)
    runner.run_series("smoke", only="08", out=tmp_path / "r", progress=False,
                      params={"held_out": ["rosendahl"]})
    assert list(seen) == ["08_source_shift"] and seen["08_source_shift"]["held_out"] == [
        "rosendahl"] and seen["08_source_shift"]["profile"] == "smoke"
