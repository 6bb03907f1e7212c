"""Issue 14: cache identity from content, --no-cache bypasses every cache, damaged entries of
the result and figure caches are recomputed with a warning (never trusted, never fatal)."""

import json
import logging
import os
import shutil
from pathlib import Path

import pytest
from tiny_models import save_tiny_llama, tiny_model

from reportgen import build as build_module
from reportgen import cache_keys, compute
from reportgen.cache_keys import model_identity
from reportgen.compute import results_cache

CASE = """
id = "case-a"
model = "{model}"
prompt = "the capital of france is"
target = "paris"
contrast = "lyon"
bos = true
"""


@pytest.fixture
def setup(tmp_path, monkeypatch):
    """A fresh cache, a tiny model folder and one case."""
    monkeypatch.setenv("REPORTGEN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(cache_keys, "_memo_seen", {})
    model = save_tiny_llama(tmp_path / "model")
    cases = tmp_path / "cases"
    cases.mkdir()
    (cases / "a.toml").write_text(CASE.format(model=model))
    return tmp_path, cases, model


def build(cases, out, **kwargs):
    return build_module.build([cases], out, progress=False, pdf=False, **kwargs)


def explained(out):
    data = json.loads((out / "cases" / "case-a" / "data.json").read_text())
    return data["attribution"]["explained"], data["graph"]["node_relevance"]


def test_weights_overwritten_in_place_are_not_served_from_the_cache(setup):
    tmp, cases, model = setup
    out = tmp / "site"
    first = build(cases, out)
    assert first.built == ["case-a"]
    old_f, old_graph = explained(out)
    weights = next((tmp / "model").glob("*.safetensors"))
    before = weights.stat()
    other = tmp / "other"
    tiny_model("llama", seed=7).save_pretrained(other)
    new_bytes = next(other.glob("*.safetensors")).read_bytes()
    assert len(new_bytes) == before.st_size  # same size: only the content tells them apart
    with open(weights, "r+b") as handle:  # in place: same inode
        handle.write(new_bytes)
    os.utime(weights, ns=(before.st_atime_ns, before.st_mtime_ns))  # and the old mtime
    assert (
        weights.stat().st_ino == before.st_ino and weights.stat().st_mtime_ns == before.st_mtime_ns
    )
    second = build(cases, out)
    assert second.built == ["case-a"] and not second.cached
    new_f, new_graph = explained(out)
    assert new_f != pytest.approx(old_f) and new_graph != old_graph
    assert build(cases, out).cached == ["case-a"]  # and the new model's entry is reused


def test_weights_are_hashed_once_and_again_only_when_they_change(setup, monkeypatch):
    _, _, model = setup
    calls = []
    real = cache_keys.sha256_file
    monkeypatch.setattr(cache_keys, "sha256_file", lambda p: calls.append(p.name) or real(p))
    first = model_identity(model)
    n_files = len(calls)
    assert n_files >= 3 and any(name.endswith(".safetensors") for name in calls)
    monkeypatch.setattr(cache_keys, "_memo_seen", {})  # a new process: only the disk memo is left
    assert model_identity(model) == first and len(calls) == n_files
    config = os.path.join(model, "config.json")
    data = json.loads(open(config).read())
    data["rms_norm_eps"] = 1e-3
    open(config, "w").write(json.dumps(data))
    changed = model_identity(model)
    assert changed != first and calls[n_files:] == ["config.json"]


def test_hf_ids_are_identified_by_their_cached_commit(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setenv("REPORTGEN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    repo = tmp_path / "hub" / "models--org--tiny"
    assert model_identity("org/tiny") == "hf:org/tiny"  # not cached: nothing known
    for commit in ("a" * 40, "b" * 40):
        (repo / "refs").mkdir(parents=True, exist_ok=True)
        (repo / "refs" / "main").write_text(commit)
        snap = repo / "snapshots" / commit
        snap.mkdir(parents=True)
        (snap / "config.json").write_text('{"model_type": "llama"}')
        identity = model_identity("org/tiny")
        assert identity.startswith(f"hf:org/tiny@{commit}:")


def test_no_cache_bypasses_results_graphs_and_figures(setup, monkeypatch):
    tmp, cases, _ = setup
    out = tmp / "site"
    build_module.build([cases], out, progress=False, pdf=True)
    graph_flags, renders = [], []
    real_graph = compute.compute_graph

    def spy_graph(*args, **kwargs):
        graph_flags.append(kwargs.get("use_cache"))
        return real_graph(*args, **kwargs)

    monkeypatch.setattr(compute, "compute_graph", spy_graph)
    import reportgen.render.latex as latex

    real_latex = latex.render_latex
    monkeypatch.setattr(
        latex, "render_latex", lambda *a, **k: renders.append(1) or real_latex(*a, **k)
    )
    monkeypatch.setattr(  # the runner looks cached_result up at call time
        compute, "cached_result", lambda key: pytest.fail("--no-cache read the result cache")
    )
    report = build_module.build([cases], out, progress=False, pdf=True, use_cache=False)
    assert report.built == ["case-a"] and graph_flags == [False] and renders == [1]
    assert (out / "cases" / "case-a" / "figures" / "case-a.pdf").exists()


def _entry():
    (path,) = results_cache().glob("*.json")
    return path


def _rehash(envelope):
    import hashlib

    envelope["sha256"] = hashlib.sha256(compute._canonical(envelope["result"]).encode()).hexdigest()
    return envelope


def _edit(path, change):
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _wrong_type(envelope):
    envelope["result"]["attribution"]["explained"] = "big"
    _rehash(envelope)


def _missing_field(envelope):
    del envelope["result"]["attribution"]
    _rehash(envelope)


def _fifo(path):
    path.unlink()
    os.mkfifo(path)


def _folder(path):
    path.unlink()
    path.mkdir()
    (path / "x").write_text("x")


def _loop(path):
    path.unlink()
    path.symlink_to(path.name)  # unreadable: a symbolic link to itself


DAMAGE = {
    "binary garbage": lambda p: p.write_bytes(b"\x00\xff\xfe\x89PNG garbage"),
    "a JSON string": lambda p: p.write_text('"hello"'),
    "a JSON list": lambda p: p.write_text("[1, 2, 3]"),
    "truncated": lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]),
    "edited number": lambda p: _edit(
        p, lambda d: d["result"]["attribution"].__setitem__("explained", 123.0)
    ),
    "wrong field type, checksum fixed": lambda p: _edit(p, _wrong_type),
    "missing field, checksum fixed": lambda p: _edit(p, _missing_field),
    "entry of another key": lambda p: _edit(p, lambda d: d.__setitem__("key", "0" * 24)),
    "a directory in its place": _folder,
    "a fifo in its place": _fifo,
    "unreadable (symlink loop)": _loop,
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_result_cache_entry_is_recomputed_with_a_warning(setup, caplog, damage):
    tmp, cases, _ = setup
    out = tmp / "site"
    build(cases, out)
    good_f, _ = explained(out)
    DAMAGE[damage](_entry())
    with caplog.at_level(logging.WARNING, logger="reportgen"):
        report = build(cases, out)
    assert report.built == ["case-a"] and not report.failures
    warnings = [r.getMessage() for r in caplog.records if "result cache entry" in r.getMessage()]
    assert len(warnings) == 1 and "recomputing" in warnings[0] and "\n" not in warnings[0]
    assert explained(out)[0] == pytest.approx(good_f)
    assert build(cases, out).cached == ["case-a"]  # the entry was repaired


def test_a_damaged_figure_set_is_rendered_again(setup, caplog):
    from reportgen.models import cache_dir

    tmp, cases, _ = setup
    out = tmp / "site"
    build_module.build([cases], out, progress=False, pdf=True)
    (pdf,) = (cache_dir() / "figures").glob("*/case-a.pdf")
    good = pdf.read_bytes()
    pdf.write_bytes(b"%PDF-1.4 tampered")
    with caplog.at_level(logging.WARNING, logger="reportgen"):
        build_module.build([cases], out, progress=False, pdf=True)
    assert any("damaged figure cache entry" in r.getMessage() for r in caplog.records)
    shipped = (out / "cases" / "case-a" / "figures" / "case-a.pdf").read_bytes()
    assert shipped != b"%PDF-1.4 tampered" and shipped[:4] == good[:4] == b"%PDF"
    shutil.rmtree(pdf.parent)
    build_module.build([cases], out, progress=False, pdf=True)  # a missing set: rendered again
    assert (out / "cases" / "case-a" / "figures" / "case-a.pdf").exists()


def test_the_cli_prints_the_warning_on_a_line_of_its_own(setup):
    from click.testing import CliRunner

    from reportgen.cli import main

    tmp, cases, _ = setup
    args = ["build", str(cases), "--out", str(tmp / "site"), "--no-pdf"]
    assert CliRunner().invoke(main, args).exit_code == 0
    _entry().write_bytes(b"\x00garbage")
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0 and "1 computed" in result.output
    lines = [x for x in result.output.replace("\r", "\n").splitlines() if "warning:" in x]
    assert len(lines) == 1 and lines[0].startswith("warning: damaged result cache entry")


# --- issue 31: an unwritable cache, stale temporaries, the hash memo -----------------------------


@pytest.fixture
def fresh_cache_state(monkeypatch):
    from reportgen import cache_files

    monkeypatch.setattr(cache_files, "_unwritable", set())
    monkeypatch.setattr(cache_files, "_said", set())


def _refuse_writes_under(monkeypatch, root, code):
    """Every write below ``root`` fails with ``code`` (EROFS: a read-only cache, ENOSPC: a full
    disk), as the kernel would answer; reads work."""
    import builtins
    import errno
    import io

    root = str(root)
    real_open, real_os_open, real_mkdir = builtins.open, os.open, os.mkdir
    writes = os.O_WRONLY | os.O_RDWR | os.O_CREAT

    def refuse(path):
        if str(path).startswith(root):
            raise OSError(code, os.strerror(code), str(path))

    def guarded_open(path, mode="r", *args, **kwargs):
        if isinstance(path, str | os.PathLike) and any(c in mode for c in "wax+"):
            refuse(path)
        return real_open(path, mode, *args, **kwargs)

    def guarded_os_open(path, flags, *args, **kwargs):
        if flags & writes:
            refuse(path)
        return real_os_open(path, flags, *args, **kwargs)

    def guarded_mkdir(path, *args, **kwargs):
        refuse(path)
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded_open)
    monkeypatch.setattr(io, "open", guarded_open)
    monkeypatch.setattr(os, "open", guarded_os_open)
    monkeypatch.setattr(os, "mkdir", guarded_mkdir)
    return errno


def _cli_build(cases, out, *flags):
    from click.testing import CliRunner

    from reportgen.cli import main

    return CliRunner().invoke(main, ["build", str(cases), "--out", str(out), *flags])


def _warning_lines(output):
    return [x for x in output.replace("\r", "\n").splitlines() if x.startswith("warning:")]


@pytest.mark.parametrize("code", ["EROFS", "ENOSPC"])
def test_an_unwritable_cache_costs_one_warning_and_every_case_builds(
    setup, fresh_cache_state, monkeypatch, code
):
    import errno
    import tempfile

    from reportgen.models import cache_dir

    tmp, cases, model = setup
    scratch = set(Path(tempfile.gettempdir()).glob("reportgen-figures-*"))
    (cases / "b.toml").write_text(
        CASE.format(model=model).replace("case-a", "case-b").replace("france", "italy")
    )
    cache_dir().mkdir(parents=True)
    _refuse_writes_under(monkeypatch, cache_dir(), getattr(errno, code))
    pdf = code == "EROFS"  # the figure sets too (pdflatex is slow: once is enough)
    result = _cli_build(cases, tmp / "site", "--pdf" if pdf else "--no-pdf")
    assert result.exit_code == 0, result.output
    assert "2 computed" in result.output and "0 failed" in result.output
    (line,) = _warning_lines(result.output)
    assert f"the cache {cache_dir()} cannot be written" in line
    for case in ("case-a", "case-b"):
        assert (tmp / "site" / "cases" / case / "index.html").is_file()
        assert (tmp / "site" / "cases" / case / "figures" / f"{case}.pdf").is_file() == pdf
    assert set(Path(tempfile.gettempdir()).glob("reportgen-figures-*")) == scratch  # removed
    assert not [p for p in cache_dir().rglob("*") if p.is_file()]  # nothing half-written


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_cache_folder_builds_with_one_warning(setup, fresh_cache_state):
    from reportgen.models import cache_dir

    tmp, cases, _ = setup
    cache_dir().mkdir(parents=True)
    os.chmod(cache_dir(), 0o555)
    try:
        result = _cli_build(cases, tmp / "site", "--no-pdf")
    finally:
        os.chmod(cache_dir(), 0o755)
    assert result.exit_code == 0 and "1 computed" in result.output, result.output
    assert len(_warning_lines(result.output)) == 1


def test_stale_temporaries_of_killed_builds_are_cleaned(setup, fresh_cache_state):
    import subprocess
    import sys

    from reportgen.models import cache_dir

    tmp, cases, _ = setup
    build(cases, tmp / "site")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a process that no longer exists, like a killed build
    pid = gone.pid
    root = cache_dir()
    stale = [
        root / "graphs" / f".{'a' * 24}.npz.{pid}-0badc0de.tmp",
        root / "graphs" / f".{'b' * 24}.{pid}-0badc0de.npz.tmp",  # an older writer's name
        root / "results" / f".{'c' * 24}.{pid}.tmp",
        root / f".content-hashes.json.{pid}.tmp",
        root / "figures" / f"{'d' * 24}.partial-{pid}",
    ]
    for path in stale:
        if "partial" in path.name:
            path.mkdir(parents=True)
            (path / "case-a.tex").write_text("half")
        else:
            path.write_bytes(b"half")
    alive = root / "results" / f".{'e' * 24}.{os.getpid()}-0badc0de.tmp"  # a live writer's
    alive.write_bytes(b"being written")
    mine = root / "results" / "notes.tmp"  # not a temporary of ours
    mine.write_text("keep")
    report = build(cases, tmp / "site")
    assert report.cached == ["case-a"]
    assert [p for p in stale if p.exists()] == []
    assert alive.exists() and mine.read_text() == "keep"


def test_a_damaged_or_edited_hash_memo_is_one_warning_and_hashed_again(
    setup, fresh_cache_state, caplog
):
    from reportgen import cache_files
    from reportgen.models import cache_dir

    _, _, model = setup
    first = model_identity(model)
    memo = cache_dir() / cache_keys._HASH_MEMO
    data = json.loads(memo.read_text())
    assert data["format"] == cache_keys._MEMO_KIND and data["sha256"]
    # an edited hash (the weights would be taken for others): detected by the checksum
    entry = next(iter(data["body"].values()))
    entry["sha256"] = "0" * 64
    memo.write_text(json.dumps(data))
    cache_keys._memo_seen.clear()
    with caplog.at_level(logging.WARNING, logger="reportgen"):
        assert model_identity(model) == first
        cache_keys._memo_seen.clear()
    messages = [r.getMessage() for r in caplog.records if "hash memo" in r.getMessage()]
    assert len(messages) == 1 and "hashed again" in messages[0]
    # a folder in its place: one warning, hashed again, and the memo is written back
    memo.unlink()
    memo.mkdir()
    cache_files._said.clear()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="reportgen"):
        for _ in range(3):
            cache_keys._memo_seen.clear()
            assert model_identity(model) == first
    assert len([r for r in caplog.records if "hash memo" in r.getMessage()]) == 1
    assert memo.is_file()


def test_a_folder_or_fifo_in_place_of_a_figure_is_rendered_again(setup, fresh_cache_state, caplog):
    from reportgen.models import cache_dir

    tmp, cases, _ = setup
    out = tmp / "site"
    build_module.build([cases], out, progress=False, pdf=True)
    (pdf,) = (cache_dir() / "figures").glob("*/case-a.pdf")
    pdf.unlink()
    os.mkfifo(pdf)  # reading it would block forever
    with caplog.at_level(logging.WARNING, logger="reportgen"):
        report = build_module.build([cases], out, progress=False, pdf=True)
    assert not report.failures
    assert any("damaged figure cache entry" in r.getMessage() for r in caplog.records)
    assert (out / "cases" / "case-a" / "figures" / "case-a.pdf").read_bytes()[:4] == b"%PDF"
    folder = pdf.parent
    shutil.rmtree(folder)
    folder.write_text("a file where the set goes")
    build_module.build([cases], out, progress=False, pdf=True)
    assert folder.is_dir() and (folder / "case-a.pdf").is_file()


@pytest.mark.slow  # spawns two worker processes (about a minute on a loaded 2-core machine)
def test_workers_forward_one_warning_for_an_unwritable_cache(setup, fresh_cache_state, monkeypatch):
    """--jobs 2: each worker meets the unwritable cache; the driver prints one warning line."""
    tmp, cases, model = setup
    (cases / "b.toml").write_text(
        CASE.format(model=model).replace("case-a", "case-b").replace("france", "italy")
    )
    blocker = tmp / "notes.txt"  # a user's file where the cache's parent folder should be
    blocker.write_text("mine")
    monkeypatch.setenv("REPORTGEN_CACHE", str(blocker / "cache"))
    result = _cli_build(cases, tmp / "site", "--no-pdf", "--jobs", "2")
    assert result.exit_code == 0 and "2 computed" in result.output, result.output
    (line,) = _warning_lines(result.output)
    assert "cannot be written (Not a directory)" in line
    assert blocker.read_text() == "mine"


def test_a_damaged_chart_runtime_in_the_cache_is_bundled_again_with_one_warning(caplog):
    """The vega runtime is inlined into every page: a truncated cache entry must not be."""
    import logging

    import vl_convert

    from reportgen.models import cache_dir
    from reportgen.render.html import vega_bundle

    read = vega_bundle.__wrapped__  # the cache file each time, not this process's memo
    bundle = read()
    entry = cache_dir() / "assets" / f"vega-bundle-{vl_convert.__version__}.json"
    assert entry.is_file() and len(bundle) > 100_000
    with caplog.at_level(logging.WARNING, logger="reportgen"):
        assert read() == bundle and not caplog.records  # from the cache
        text = entry.read_text(encoding="utf-8")
        entry.write_text(text[: len(text) // 2], encoding="utf-8")  # a killed copy, say
        assert read() == bundle
        (record,) = caplog.records
        assert "damaged cache entry" in record.getMessage()
        caplog.clear()
        assert read() == bundle and not caplog.records  # repaired
