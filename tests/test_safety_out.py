"""Issue 14: `build --out` never deletes what is not its own; the lock, staging, permissions."""

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from tiny_models import save_tiny_llama

from reportgen import build as build_module
from reportgen import outdir
from reportgen.cli import main
from reportgen.errors import ReportgenError

CASE = """
id = "{id}"
model = "{model}"
prompt = "the capital of france is"
target = "paris"
contrast = "lyon"
bos = true
"""


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_llama(tmp_path_factory.mktemp("tiny-safety-out"))


@pytest.fixture
def project(tmp_path, model_dir):
    """A user's project: a README, notes and a cases folder with one case."""
    (tmp_path / "README.md").write_text("my project\n")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("keep me\n")
    cases = tmp_path / "cases"
    cases.mkdir()
    (cases / "a.toml").write_text(CASE.format(id="case-a", model=model_dir))
    return tmp_path


def snapshot(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def build_cli(cwd: Path, *args: str):
    old = os.getcwd()
    os.chdir(cwd)
    try:
        return CliRunner().invoke(main, ["build", *args, "--no-pdf"])
    finally:
        os.chdir(old)


@pytest.mark.parametrize(
    "out, reason",
    [
        (".", "holds the input"),
        ("cases", "holds the input"),
        ("notes", "not empty"),
        ("README.md", "is a file"),
    ],
)
def test_build_refuses_folders_that_are_not_its_own(project, out, reason):
    before = snapshot(project)
    result = build_cli(project, "cases", "--out", out)
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "refusing to build the site" in lines[0] and reason in lines[0]
    assert "Traceback" not in result.output
    assert snapshot(project) == before  # nothing touched
    assert not [p for p in project.iterdir() if p.name.startswith(".") and "lock" in p.name]


def test_a_site_inside_the_cases_folder_is_not_read_as_cases(project):
    for _ in range(2):
        result = build_cli(project, "cases", "--out", "cases/site")
        assert (
            result.exit_code == 0
            and "1 computed" in result.output
            or "1 from cache" in result.output
        )
    assert (project / "cases" / "site" / "cases" / "case-a" / "a.toml").exists()
    result = CliRunner().invoke(main, ["validate", str(project / "cases")])
    assert result.output.strip().splitlines()[-1] == "1 valid, 0 invalid"


def test_build_refuses_home_and_root(project, monkeypatch):
    home = project / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for out in (str(home), "/"):
        result = build_cli(project, "cases", "--out", out)
        assert result.exit_code == 1 and "home directory" in result.output, result.output
    assert list(home.iterdir()) == []


def test_a_previous_site_is_replaced_but_a_file_added_to_it_is_not_lost(project):
    site = project / "site"
    assert build_cli(project, "cases", "--out", "site").exit_code == 0
    marker = json.loads((site / outdir.MARKER).read_text())
    assert marker["tool"] == "reportgen" and "index.html" in marker["files"]
    assert build_cli(project, "cases", "--out", "site").exit_code == 0  # its own: rebuilt
    (site / "my-notes.txt").write_text("mine")
    result = build_cli(project, "cases", "--out", "site")
    assert result.exit_code == 1 and "my-notes.txt" in result.output
    assert (site / "my-notes.txt").read_text() == "mine"
    # an empty folder and an absent one are fine
    (project / "empty").mkdir()
    assert build_cli(project, "cases", "--out", "empty").exit_code == 0
    assert build_cli(project, "cases", "--out", "new/deeper").exit_code == 0


def test_a_second_build_into_the_same_out_refuses_naming_the_first(project):
    out = (project / "site").resolve()
    with outdir.build_lock(out, "reportgen build the-first-one"):
        with pytest.raises(ReportgenError) as info:
            build_module.build([project / "cases"], out, progress=False, pdf=False)
    message = str(info.value)
    assert f"pid {os.getpid()}" in message and "the-first-one" in message and "wait" in message
    assert not out.exists()
    # a lock held by another process: the kernel releases it when that process dies
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys,time; from pathlib import Path; from reportgen import outdir\n"
            f"with outdir.build_lock(Path({str(out)!r}), 'other'):\n"
            "    print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(build_module.__file__).parent.parent)},
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ReportgenError, match=f"pid {holder.pid}"):
            build_module.build([project / "cases"], out, progress=False, pdf=False)
    finally:
        holder.kill()  # like SIGKILL of a build
        holder.wait()
    build_module.build([project / "cases"], out, progress=False, pdf=False)
    assert (out / "index.html").exists()


def test_stale_staging_of_a_killed_build_is_cleaned_and_a_moved_site_restored(project):
    out = (project / "site").resolve()
    build_module.build([project / "cases"], out, progress=False, pdf=False)
    index = (out / "index.html").read_text()
    # a build killed while staging, one killed right after moving the old site aside
    stale = out.parent / f"{outdir.staging_prefix(out)}abc123"
    stale.mkdir()
    outdir.write_marker(stale, staging=True)
    (stale / "half.html").write_text("half")
    empty = out.parent / f"{outdir.staging_prefix(out)}def456"
    empty.mkdir()
    foreign = out.parent / f"{outdir.staging_prefix(out)}mine"  # not ours: no marker
    foreign.mkdir()
    (foreign / "keep.txt").write_text("keep")
    out.rename(outdir.previous_path(out))
    outdir.clean_stale(out)
    assert (out / "index.html").read_text() == index  # put back
    assert not stale.exists() and not empty.exists() and not outdir.previous_path(out).exists()
    assert (foreign / "keep.txt").read_text() == "keep"
    # a folder named like the swap's place for the old site, but not one: refused, kept
    mine = outdir.previous_path(out)
    mine.mkdir()
    (mine / "keep.txt").write_text("keep")
    with pytest.raises(ReportgenError, match="is in the way"):
        outdir.clean_stale(out)
    assert (mine / "keep.txt").read_text() == "keep"
    (mine / "keep.txt").unlink()
    mine.rmdir()
    # a swap killed while it deleted the old site: what is left is still marked, still ours
    out.rename(outdir.previous_path(out))
    build_module.build([project / "cases"], out, progress=False, pdf=False)
    half = outdir.previous_path(out)
    out.rename(half)
    real_rmtree = outdir.shutil.rmtree
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            outdir.shutil, "rmtree", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt)
        )
        with pytest.raises(KeyboardInterrupt):
            outdir.remove_site(half)
    assert outdir.read_marker(half) is not None
    real_rmtree(out, ignore_errors=True)
    outdir.clean_stale(out)  # put back, as a site moved aside
    assert outdir.read_marker(out) is not None and not half.exists()
    # and a real build does it too
    stale.mkdir()
    outdir.write_marker(stale, staging=True)
    build_module.build([project / "cases"], out, progress=False, pdf=False)
    assert not stale.exists()


def test_the_site_is_world_readable_whatever_the_umask(project):
    old = os.umask(0o077)
    try:
        out = project / "site"
        build_module.build([project / "cases"], out, progress=False, pdf=False)
    finally:
        os.umask(old)
    modes = {p: stat.S_IMODE(p.stat().st_mode) for p in [out, *out.rglob("*")]}
    assert all(m == 0o755 for p, m in modes.items() if p.is_dir())
    assert all(m == 0o644 for p, m in modes.items() if p.is_file())
    assert len(modes) > 5


def test_a_case_file_named_data_json_does_not_overwrite_the_dossier_data(project, model_dir):
    odd = project / "odd"
    odd.mkdir()
    (odd / "data.json").write_text(CASE.format(id="case-odd", model=model_dir))
    out = project / "site"
    report = build_module.build([odd / "data.json"], out, progress=False, pdf=False)
    assert report.built == ["case-odd"]
    data = json.loads((out / "cases" / "case-odd" / "data.json").read_text())
    assert data["case_id"] == "case-odd" and "attribution" in data
    assert (
        (out / "cases" / "case-odd" / "case-odd.toml")
        .read_text()
        .strip()
        .startswith('id = "case-odd"')
    )


def test_run_guards_its_out_folder_too(project):
    before = snapshot(project)
    old = os.getcwd()
    os.chdir(project)
    try:
        refused = CliRunner().invoke(main, ["run", "cases/a.toml", "--out", ".", "--no-pdf"])
        assert refused.exit_code == 1 and "refusing" in refused.output, refused.output
        assert snapshot(project) == before
        for _ in range(2):  # a new folder, then the dossier it made
            done = CliRunner().invoke(main, ["run", "cases/a.toml", "--out", "dossier", "--no-pdf"])
            assert done.exit_code == 0, done.output
    finally:
        os.chdir(old)
    assert outdir.read_marker(project / "dossier") is not None
    assert stat.S_IMODE((project / "dossier" / "index.html").stat().st_mode) == 0o644


def _one_line_refusal(result, *needles):
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "refusing to build the site" in lines[0], result.output
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_a_hand_made_site_is_never_taken_for_an_old_build(project):
    """Issue 31: a folder shaped like a site (index.html, .nojekyll, assets/, cases/) but
    without a marker listing its files is refused with what a build would delete."""
    look = project / "look"
    (look / "assets").mkdir(parents=True)
    (look / "cases" / "x").mkdir(parents=True)
    (look / "index.html").write_text("my own page")
    (look / ".nojekyll").write_text("")
    (look / "assets" / "style.css").write_text("body {}")
    (look / "assets" / "photo.jpg").write_bytes(b"\xff\xd8jpg")
    (look / "assets" / "cv.pdf").write_bytes(b"%PDF-1.4 cv")
    (look / "cases" / "x" / "notes.txt").write_text("mine")
    before = snapshot(look)
    line = _one_line_refusal(
        build_cli(project, "cases", "--out", "look"), "would delete 6 files", "assets/cv.pdf"
    )
    assert "assets/photo.jpg" in line
    assert snapshot(look) == before
    done = CliRunner().invoke(main, ["run", str(project / "cases/a.toml"), "--out", str(look)])
    assert done.exit_code == 1 and "would delete" in done.output
    assert snapshot(look) == before
    # the plain look-alike without a .nojekyll neither
    (look / ".nojekyll").unlink()
    _one_line_refusal(build_cli(project, "cases", "--out", "look"))
    assert (look / "index.html").read_text() == "my own page"


def test_a_site_without_its_marker_is_refused_with_what_would_be_deleted(project):
    """A site whose marker is gone (an older reportgen's, or a user's copy) cannot be told from
    a hand-made one: refused, even when a user file hides under cases/<id>/."""
    site = project / "site"
    assert build_cli(project, "cases", "--out", "site").exit_code == 0
    (site / outdir.MARKER).unlink()
    (site / "cases" / "case-a" / "my-notes.txt").write_text("mine")
    before = snapshot(site)
    line = _one_line_refusal(build_cli(project, "cases", "--out", "site"), "would delete")
    assert "delete the folder yourself" in line
    assert snapshot(site) == before
    # removed by the user: the next build writes a marked site again
    import shutil

    shutil.rmtree(site)
    assert build_cli(project, "cases", "--out", "site").exit_code == 0
    assert outdir.read_marker(site) is not None


@pytest.mark.parametrize(
    "marker",
    [
        '{"tool": "reportgen", "version": "0.1"}',
        '{"tool": "reportgen", "files": "thesis.tex"}',
        '{"tool": "reportgen", "files": [1, 2]}',
        '{"tool": "reportgen", "files": null}',
        "link",
    ],
)
def test_a_marker_without_a_list_of_files_is_no_marker(project, marker):
    folder = project / "thesis"
    folder.mkdir()
    (folder / "thesis.tex").write_text("\\documentclass{article}")
    if marker == "link":  # a link to a real site's marker elsewhere
        assert build_cli(project, "cases", "--out", "site").exit_code == 0
        (folder / outdir.MARKER).symlink_to(project / "site" / outdir.MARKER)
    else:
        (folder / outdir.MARKER).write_text(marker)
    before = snapshot(folder)
    _one_line_refusal(build_cli(project, "cases", "--out", "thesis"), "thesis.tex")
    assert snapshot(folder) == before and (folder / "thesis.tex").exists()


@pytest.mark.parametrize("kind", ["symlink", "dangling symlink", "hard link", "fifo"])
def test_the_lock_file_is_never_written_through_a_link(project, kind):
    victim = project / "victim.txt"
    victim.write_text("precious\n")
    lock = project / ".site.lock"
    if kind == "symlink":
        lock.symlink_to(victim)
    elif kind == "dangling symlink":
        lock.symlink_to(project / "created-by-the-build.txt")
    elif kind == "hard link":
        os.link(victim, lock)
    else:
        os.mkfifo(lock)
    result = build_cli(project, "cases", "--out", "site")
    assert result.exit_code == 1 and "lock file" in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert victim.read_text() == "precious\n"
    assert not (project / "created-by-the-build.txt").exists()
    assert not (project / "site").exists()
    with pytest.raises(ReportgenError, match="lock file"):
        with outdir.build_lock((project / "site").resolve()):
            pass
    assert victim.read_text() == "precious\n"


def _second_case(project, model_dir):
    (project / "cases" / "b.toml").write_text(CASE.format(id="case-b", model=model_dir))


def test_run_refuses_a_site_of_several_cases(project, model_dir):
    _second_case(project, model_dir)
    assert build_cli(project, "cases", "--out", "site").exit_code == 0
    site = project / "site"
    assert outdir.site_case_ids(site) == ["case-a", "case-b"]
    before = snapshot(site)
    result = CliRunner().invoke(
        main, ["run", str(project / "cases" / "a.toml"), "--out", str(site), "--no-pdf"]
    )
    assert result.exit_code == 1, result.output
    line = result.output.strip().splitlines()[-1]
    assert "2 cases" in line and "reportgen build" in line
    assert snapshot(site) == before
    # a one-case site (what run wrote) is replaced by run, as before
    one = project / "one"
    for case in ("a", "b"):
        done = CliRunner().invoke(
            main, ["run", str(project / "cases" / f"{case}.toml"), "--out", str(one), "--no-pdf"]
        )
        assert done.exit_code == 0, done.output
    assert outdir.site_case_ids(one) == ["case-b"]


def test_build_and_run_hold_the_lock_before_computing(project, monkeypatch):
    out = (project / "site").resolve()
    seen = []
    real = build_module.compute_results

    def spy(*args, **kwargs):
        seen.append(outdir.lock_path(out).read_text())
        return real(*args, **kwargs)

    monkeypatch.setattr(build_module, "compute_results", spy)
    build_module.build([project / "cases"], out, progress=False, pdf=False)
    result = CliRunner().invoke(
        main, ["run", str(project / "cases" / "a.toml"), "--out", str(out), "--no-pdf"]
    )
    assert result.exit_code == 0, result.output
    assert len(seen) == 2 and all(f"pid {os.getpid()}" in text for text in seen)
    # another build holds it: run refuses at once, nothing is computed
    seen.clear()
    with outdir.build_lock(out, "reportgen build the-other-one"):
        result = CliRunner().invoke(
            main, ["run", str(project / "cases" / "a.toml"), "--out", str(out), "--no-pdf"]
        )
    assert result.exit_code == 1 and "the-other-one" in result.output and seen == []
