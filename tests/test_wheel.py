"""A wheel that works: built from the sources, installed outside the tree, it builds a one-case
site (templates and assets as package data) when run from another folder."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tiny_models import save_tiny_llama

ROOT = Path(__file__).resolve().parent.parent

# ~25 s of CPU (pip builds and installs, then a fresh interpreter imports torch and renders)
pytestmark = pytest.mark.slow

CASE = """
id = "wheel-case"
title = "A case rendered by the installed wheel"
model = "{model}"
prompt = "the capital of france is"
target = "paris"
contrast = "lyon"
bos = true
segments = {{ question = [1, 4] }}
"""


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{args}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_installed_wheel_builds_a_site(tmp_path):
    # build from a copy, so the build leaves nothing (build/, *.egg-info) in the source tree
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for package in ("reportgen", "lxt"):
        shutil.copytree(
            ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    wheels = tmp_path / "wheels"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    _run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(source)],
        tmp_path,
        env,
    )
    (wheel,) = wheels.glob("reportgen-*.whl")
    target = tmp_path / "installed"
    _run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)], tmp_path, env)
    assert (target / "reportgen" / "render" / "templates" / "dossier.html.j2").exists()
    assert (target / "reportgen" / "render" / "assets" / "style.css").exists()

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    model = save_tiny_llama(tmp_path / "model")
    (elsewhere / "case.toml").write_text(CASE.format(model=model))
    env["PYTHONPATH"] = str(target)
    where = _run(
        [sys.executable, "-c", "import lxt, reportgen; print(reportgen.__file__, lxt.__file__)"],
        elsewhere,
        env,
    ).split()
    assert all(Path(path).is_relative_to(target) for path in where), where
    output = _run(
        [sys.executable, "-m", "reportgen.cli", "run", "case.toml", "--out", "out", "--no-pdf"],
        elsewhere,
        env,
    )
    assert "wheel-case: explained" in output
    page = elsewhere / "out" / "cases" / "wheel-case" / "index.html"
    html = page.read_text(encoding="utf-8")
    assert "A case rendered by the installed wheel" in html and 'id="graph-explorer-data"' in html
    assert (elsewhere / "out" / "index.html").exists()
    assert (elsewhere / "out" / "assets" / "style.css").read_bytes() == (
        ROOT / "reportgen" / "render" / "assets" / "style.css"
    ).read_bytes()
    assert (page.parent / "data.json").exists() and (page.parent / "graph.npz").exists()
