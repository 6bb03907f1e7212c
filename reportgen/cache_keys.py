"""What a cached result or graph is keyed on, besides the case itself: the code that computes
numbers (:func:`code_version`) and the model's weights (:func:`model_identity`).

Every module under ``reportgen/`` is in exactly one of two lists (a test checks it, so a new
module has to be placed): :data:`COMPUTING` -- an edit there can change a number on a page, so
it changes the key and every entry is recomputed -- and :data:`PRESENTING` -- rendering,
scheduling, storing and publishing, which re-render or re-run but never change a number. The
``lxt`` package is computing as a whole."""

from __future__ import annotations

import hashlib
import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from . import cache_files
from .models import EMBEDDED_MODELS, cache_dir, embedded_path, sha256_file

#: packages hashed whole, beside reportgen's computing modules
COMPUTING_PACKAGES = ("lxt",)
#: reportgen modules (files, or folders ending in "/") whose code decides the numbers
COMPUTING = (
    "__init__.py",  # the version
    "attention_impl.py",
    "attribution.py",
    "cache_keys.py",
    "cases.py",
    "clean_forward.py",
    "compare.py",
    "compute.py",
    "continuations.py",
    "errors.py",
    "faithfulness/",
    "files.py",
    "graph/",
    "inputs.py",
    "interventions.py",
    "kv_cache.py",
    "models.py",
    "objectives.py",
    "pipeline.py",
    "precheck.py",
    "probe.py",
    "question.py",
    "results.py",
    "toml_values.py",
)
#: reportgen modules that present, schedule, store or publish numbers, never change them
PRESENTING = (
    "build.py",
    "cache_files.py",  # how entries are written; their format names are in the entries
    "cli/",
    "collect/",  # writes case files; a dossier's numbers come from the case file alone
    "explore.py",
    "explore_probe.py",  # the live probe's requests and answers
    "explore_questions.py",  # the page's requests and the case files it saves
    "explore_runs.py",
    "explore_security.py",
    "interrupts.py",
    "localweb.py",
    "outdir.py",
    "progress.py",
    "project.py",  # settings reach the key as the runtime, not as code
    "publish.py",
    "published.py",  # what a published page leaves out
    "render/",
    "runner/",  # the runner only schedules: what changes numbers is in the key itself
    "site_links.py",
)


def module_list(relative: str) -> str | None:
    """ "computing", "presenting" or None (in neither list) for a path below ``reportgen/``."""
    for name, entries in (("computing", COMPUTING), ("presenting", PRESENTING)):
        if any(relative == e or (e.endswith("/") and relative.startswith(e)) for e in entries):
            return name
    return None


@lru_cache(maxsize=1)
def code_version() -> str:
    """Hash of the source files that compute numbers (:data:`COMPUTING`); a module in neither
    list is hashed too (a test makes its author place it)."""
    digest = hashlib.sha256()
    root = Path(__file__).resolve().parent.parent
    for package in (*COMPUTING_PACKAGES, "reportgen"):
        for path in sorted((root / package).rglob("*.py")):
            relative = path.relative_to(root / package).as_posix()
            if package == "reportgen" and module_list(relative) == "presenting":
                continue
            digest.update(relative.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


@lru_cache(maxsize=1)
def render_version() -> str:
    """Hash of the render package's Python modules: what a cached figure set is drawn by (its
    charts, captions, TikZ and the pdflatex run), so any edit there draws the set again."""
    digest = hashlib.sha256()
    root = Path(__file__).resolve().parent / "render"
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


#: the end of an embedded model's identity before its fetch: its weights are pinned by sha256,
#: so the identity after the fetch is the one a result computed with them belongs under
UNFETCHED = ":unfetched"


def model_identity(spec: str) -> str:
    """A string that changes when the model's weights change, known without loading it.

    Local folders and files (and fetched embedded models) are identified by the sha256 of
    their files, so weights overwritten in place are never served from an old cache entry; the
    hashes are remembered by path, size, mtime, ctime and inode (:func:`content_hash`). A
    Hugging Face id is identified by the commit its local cache resolves to, and by the content
    of that snapshot."""
    if spec in EMBEDDED_MODELS:
        folder = embedded_path(spec)
        if not (folder / "reportgen-model.json").exists():
            return f"{spec}{UNFETCHED}"
        return f"{spec}:{content_hash(folder)}"
    path = Path(spec).expanduser()
    if path.exists():
        return f"{path.resolve()}:{content_hash(path)}"
    snapshot = _hf_snapshot(spec)
    if snapshot is not None:
        return f"hf:{spec}@{snapshot.name}:{content_hash(snapshot)}"
    return f"hf:{spec}"


def _hf_snapshot(spec: str) -> Path | None:
    """The local HF cache snapshot folder ``refs/main`` points at, or None."""
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(spec, "config.json")
    except Exception:  # noqa: BLE001 -- not a valid repo id, no hub library: not cached
        return None
    return Path(found).parent if isinstance(found, str) else None


_HASH_MEMO = "content-hashes.json"
_memo_seen: dict[str, dict[str, Any]] = {}


def _file_state(path: Path) -> dict[str, int]:
    st = path.stat()
    return {
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "ctime_ns": st.st_ctime_ns,
        "inode": st.st_ino,
        "device": st.st_dev,
    }


def _model_files(path: Path) -> list[Path]:
    """Every regular file of a model folder (weights, config, tokenizer), hidden ones skipped;
    a single file is itself."""
    if path.is_file():
        return [path]
    files = []
    for base, dirs, names in os.walk(path):  # links to folders are not followed: no loops
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            item = Path(base) / name
            if not name.startswith(".") and item.is_file():
                files.append(item)
    return sorted(files)


_MEMO_KIND = "reportgen-hash-memo"


def _read_memo(memo_path: Path) -> dict[str, Any]:
    """The remembered hashes (a sealed envelope; an older plain memo is silently hashed again)."""
    try:
        data = json.loads(cache_files.read_regular(memo_path).decode("utf-8"))
        if isinstance(data, dict) and "format" not in data:
            return {}  # written before the memo had a checksum
        memo = cache_files.unseal(data, _MEMO_KIND, _HASH_MEMO)
        if not isinstance(memo, dict):
            raise ValueError("not an object")
        return memo
    except (FileNotFoundError, NotADirectoryError):
        return {}
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        cache_files.warn_once(
            f"damaged hash memo {memo_path} ({reason[:80]}); model files are hashed again"
        )
        return {}


def content_hash(path: Path) -> str:
    """sha256 over the names and contents of a model file or folder's files. Each file is
    hashed once and remembered on disk by its (path, size, mtime, ctime, inode); a file whose
    state changed is hashed again."""
    memo_path = cache_dir() / _HASH_MEMO
    memo = {**_read_memo(memo_path), **_memo_seen}
    changed = False
    digest = hashlib.sha256()
    root = path.resolve()
    for file in _model_files(root):
        real = file.resolve()
        state = _file_state(real)
        entry = memo.get(str(real))
        if not (
            isinstance(entry, dict)
            and isinstance(entry.get("sha256"), str)
            and {k: entry.get(k) for k in state} == state
        ):
            entry = {**state, "sha256": sha256_file(real)}
            memo[str(real)] = entry
            changed = True
        _memo_seen[str(real)] = entry
        digest.update(file.relative_to(root).as_posix().encode() if file != root else b"")
        digest.update(b"\0" + entry["sha256"].encode() + b"\0")
    if changed:  # a cache that cannot be written: one warning in all (cache_files)
        cache_files.write_sealed(memo_path, _MEMO_KIND, _HASH_MEMO, memo)
    return digest.hexdigest()[:32]
