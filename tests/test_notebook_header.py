"""Colab badges and setup cells: generated from pyproject, and the cell installs skinlib."""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import notebook_header as nh  # noqa: E402


def test_notebooks_and_readme_are_up_to_date():
    assert nh.main(["--check"]) == 0


def test_every_notebook_opens_with_badge_then_setup_cell():
    repo = nh.repository()
    assert repo.startswith("https://github.com/")
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        assert nh.colab_url(repo, path.stem) in nb.cells[0].source
        assert nb.cells[1].metadata.get("tags") == ["setup"], path.name
        assert f'notebook.intro("{path.stem}")' in nb.cells[1].source
        assert repo in nb.cells[1].source


def test_check_reports_a_stale_notebook(tmp_path, monkeypatch):
    src = ROOT / "notebooks" / "02_baseline_cnn.ipynb"
    nb = nbformat.read(src, as_version=4)
    nb.cells[1].source = nb.cells[1].source.replace("skinlib/skinlib", "someone/else")
    stale = tmp_path / src.name
    nbformat.write(nb, stale)
    assert nh._updated_text(stale, nh.repository()) != nbformat.writes(nb)


def test_repository_is_read_from_project_urls(tmp_path):
    (tmp_path / "p.toml").write_text('[project]\nname="x"\n[project.urls]\n'
                                     'Homepage = "https://a.example"\n'
                                     'Repository = "https://github.com/o/r/"\n')
    assert nh.repository(tmp_path / "p.toml") == "https://github.com/o/r"
    (tmp_path / "q.toml").write_text('[project]\nname="x"\n')
    with pytest.raises(ValueError, match="Repository"):
        nh.repository(tmp_path / "q.toml")


@pytest.mark.slow
def test_setup_cell_installs_skinlib_into_a_new_venv_as_in_colab(tmp_path):
    """The cell's Colab branch, run outside Colab: a fake ``google.colab`` module, the install
    source pointed at this checkout, a new venv (system site packages for TensorFlow & co.)."""
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(system_site_packages=True, with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    cell = nh.setup_source(nh.repository(), "02_baseline_cnn")
    script = tmp_path / "cell.py"
    script.write_text("import sys, types\nsys.modules['google'] = types.ModuleType('google')\n"
                      "sys.modules['google.colab'] = types.ModuleType('google.colab')\n"
                      + cell + "\nimport skinlib\nprint('FROM', skinlib.__file__)\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SKINLIB_PROFILE")}
    env.update(SKINLIB_INSTALL_FROM=str(ROOT), SKINLIB_DATA="synthetic")
    out = subprocess.run([str(python), str(script)], cwd=tmp_path, env=env, text=True,
                         capture_output=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    origin = out.stdout.split("FROM ")[-1].strip()
    assert str(env_dir) in origin, origin  # imported from the new venv, not the checkout
    assert "02_baseline_cnn: profile 'quick'" in out.stdout
    assert "Run time:" in out.stdout and "recorded quick run" in out.stdout
