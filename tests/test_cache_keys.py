"""The result cache's key: every module is placed as computing or presenting, and an edit to
a computing module (only) changes the code version."""

from __future__ import annotations

from pathlib import Path

import reportgen
from reportgen import cache_keys

ROOT = Path(reportgen.__file__).resolve().parent


def test_every_module_is_in_exactly_one_list():
    unplaced, twice = [], []
    for path in sorted(ROOT.rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        lists = [
            name
            for name, entries in (
                ("computing", cache_keys.COMPUTING),
                ("presenting", cache_keys.PRESENTING),
            )
            if any(relative == e or (e.endswith("/") and relative.startswith(e)) for e in entries)
        ]
        if not lists:
            unplaced.append(relative)
        elif len(lists) > 1:
            twice.append(relative)
    assert not unplaced, f"place these in cache_keys.COMPUTING or PRESENTING: {unplaced}"
    assert not twice, f"in both lists: {twice}"


def test_every_listed_entry_exists():
    for entry in (*cache_keys.COMPUTING, *cache_keys.PRESENTING):
        assert (ROOT / entry.rstrip("/")).exists(), entry


def _version_with(monkeypatch, tmp_path, edit: str) -> str:
    """code_version of a copy of the source tree with ``edit`` (a path below reportgen/) changed."""
    import shutil

    copy = tmp_path / "src"
    shutil.copytree(ROOT, copy / "reportgen", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT.parent / "lxt", copy / "lxt", ignore=shutil.ignore_patterns("__pycache__"))
    if edit:
        target = copy / "reportgen" / edit
        target.write_text(target.read_text(encoding="utf-8") + "\n# edited\n", encoding="utf-8")
    monkeypatch.setattr(cache_keys, "__file__", str(copy / "reportgen" / "cache_keys.py"))
    cache_keys.code_version.cache_clear()
    try:
        return cache_keys.code_version()
    finally:
        cache_keys.code_version.cache_clear()


def test_an_edit_to_computing_code_changes_the_version(monkeypatch, tmp_path):
    base = _version_with(monkeypatch, tmp_path / "a", "")
    assert _version_with(monkeypatch, tmp_path / "b", "graph/prune.py") != base
    assert _version_with(monkeypatch, tmp_path / "c", "objectives.py") != base
    assert _version_with(monkeypatch, tmp_path / "d", "render/charts.py") == base
    assert _version_with(monkeypatch, tmp_path / "e", "runner/driver.py") == base
