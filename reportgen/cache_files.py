"""The files of reportgen's caches (results, graphs, figure sets, the model-hash memo): one way
to write an entry, one way to seal and check it, one way to fail.

- :func:`replace_atomically` is reportgen's one way to write a file another process may read:
  a temporary file of this writer alone (``.<name>.<pid>-<random>.tmp``) renamed over the
  target, so a reader never sees half a file and two writers never rename each other's file
  away. Outputs (case files, summaries, ``--json``, a single-file dossier) use it directly and
  fail loudly; :func:`write_atomic` is the cache's form of it: a folder in the entry's place is
  damage in our own cache and is removed first, and a failure is one warning, never an error.
- :func:`seal` / :func:`unseal`: an entry whose numbers reach a page is a JSON envelope
  ``{"format", "key", "sha256", <body>}``; the sha256 covers the canonical JSON of the body, so
  an edited number is detected. Anything else is damage: one warning line, then recomputed.
- :func:`read_regular` reads an entry only from a regular file (a FIFO, a link or a folder in
  its place is damage, never a hang).
- A cache that cannot be written (read-only, full disk, no permission) costs ONE warning per
  process; the run goes on without storing anything there and every case still builds.
- :func:`clean_temporaries`: what writers killed mid-write left behind (``*.<pid>….tmp`` files,
  ``*.partial-<pid>`` folders of a process that is gone) is removed by the next build or run.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import secrets
import shutil
import stat
from pathlib import Path
from typing import Any

from .errors import warn

#: the cache folders whose temporaries :func:`clean_temporaries` looks at (and the root)
CACHE_FOLDERS = ("", "results", "graphs", "figures", "assets")

_unwritable: set[str] = set()  # cache roots a write already failed in (this process)
_said: set[str] = set()  # the warnings this process said once (warn_once)
_TEMPORARY = re.compile(r"\.(\d+)(?:-[0-9a-f]+)?(?:\.[A-Za-z]+)?\.tmp$")
_PARTIAL = re.compile(r"\.partial-(\d+)$")
_CANNOT_WRITE = re.compile(r"the cache (.+?) cannot be written \(")


def cache_root() -> Path:
    from .models import cache_dir

    return cache_dir()


def writer_tag() -> str:
    """A temporary-file tag no other writer shares: process id plus a random part."""
    return f"{os.getpid()}-{secrets.token_hex(4)}"


def writable() -> bool:
    """False once a write into this cache failed in this process: nothing more is tried."""
    return str(cache_root()) not in _unwritable


def cannot_write(path: Path, exc: OSError) -> None:
    """Note that the cache cannot be written (``path``: where it failed, for REPORTGEN_DEBUG);
    warns once per process and cache."""
    root = str(cache_root())
    if root in _unwritable:
        return
    _unwritable.add(root)
    if os.environ.get("REPORTGEN_DEBUG"):
        warn(f"cache write failed at {path}: {exc}")
    reason = exc.strerror or type(exc).__name__
    if exc.errno == errno.ENOSPC:
        reason = "no space left on the device"
    warn_once(
        f"the cache {root} cannot be written ({reason}); going on without storing anything "
        "there, so a later run computes it again"
    )


def warn_once(message: str) -> None:
    """A warning this process says once, however often the fault is met."""
    if message not in _said:
        _said.add(message)
        warn(message)


def already_said(message: str) -> bool:
    """For a warning another process (a worker) forwarded: True when this process said it
    already, or said that the same cache cannot be written (one such line for all workers);
    otherwise it is noted as said now."""
    found = _CANNOT_WRITE.match(message)
    if message in _said or (found is not None and found.group(1) in _unwritable):
        return True
    if found is not None:
        _unwritable.add(found.group(1))
    _said.add(message)
    return False


def _clear_place(path: Path, root: Path) -> None:
    """A folder where an entry goes, or a file where a cache folder goes: our own damage, removed
    (only below ``root``: a cache root that is a user's file is never touched)."""
    parent = path.parent
    if root in parent.parents and not parent.is_dir() and (parent.is_file() or parent.is_symlink()):
        parent.unlink()
    parent.mkdir(parents=True, exist_ok=True)
    if root in path.parents and path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)


def replace_atomically(path: Path, data: bytes | str, *, mode: int | None = None) -> None:
    """Write ``data`` to ``path`` through a temporary file of this writer alone; OSError on
    failure (nothing half-written is left). ``mode``: the file's permissions (e.g. 0o644 for a
    published file; default: the umask's)."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    tmp = path.with_name(f".{path.name}.{writer_tag()}.tmp")
    try:
        with open(tmp, "xb") as handle:
            handle.write(raw)
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_atomic(path: Path, data: bytes | str, *, within: Path | None = None) -> bool:
    """Write ``data`` to the cache entry ``path`` atomically; False (after at most one warning
    per process) when the cache cannot be written. ``within``: the folder below which damage in
    the entry's place may be removed (default: the cache root)."""
    if not writable():
        return False
    try:
        _clear_place(path, cache_root() if within is None else within)
        replace_atomically(path, data)
    except OSError as exc:
        cannot_write(path, exc)
        return False
    return True


def read_regular(path: Path) -> bytes:
    """The bytes of ``path``; ValueError unless it is a regular file (not a link, FIFO,
    device or folder: those would mislead or block)."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ValueError("it is a symbolic link, not a cache file") from None
        raise
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError("it is not a regular file")
        return handle.read()


def canonical(data: Any) -> str:
    return json.dumps(data, sort_keys=True, ensure_ascii=False)


def checksum(body: Any) -> str:
    return hashlib.sha256(canonical(body).encode()).hexdigest()


def seal(kind: str, key: str, body: Any, field: str = "body") -> dict[str, Any]:
    """The envelope of a cache entry: what it is, its key, the checksum of its body."""
    return {"format": kind, "key": key, "sha256": checksum(body), field: body}


def unseal(data: Any, kind: str, key: str, field: str = "body") -> Any:
    """The body of an envelope :func:`seal` wrote for ``key``; ValueError for anything else."""
    if not isinstance(data, dict) or data.get("format") != kind:
        raise ValueError(f"not a {kind} entry")
    if data.get("key") != key or field not in data:
        raise ValueError("an entry stored under another key")
    if checksum(data[field]) != data.get("sha256"):
        raise ValueError("its checksum does not match its content")
    return data[field]


def read_sealed(path: Path, kind: str, key: str, field: str = "body") -> Any:
    """The body of the sealed entry at ``path``: OSError/ValueError when it is damaged."""
    return unseal(json.loads(read_regular(path).decode("utf-8")), kind, key, field)


def write_sealed(
    path: Path, kind: str, key: str, body: Any, field: str = "body", within: Path | None = None
) -> bool:
    text = json.dumps(seal(kind, key, body, field), ensure_ascii=False)
    return write_atomic(path, text, within=within)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # another user's process (or not a pid at all): leave it
    return True


def clean_temporaries(root: Path | None = None) -> int:
    """Remove the temporaries of writers that are gone (a build killed mid-write); the count.
    A writer still alive keeps its file: only this host's processes are known."""
    root = cache_root() if root is None else root
    removed = 0
    for name in CACHE_FOLDERS:
        folder = root / name if name else root
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            match = _TEMPORARY.search(entry.name) or _PARTIAL.search(entry.name)
            if match is None or _alive(int(match.group(1))):
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path)
                else:
                    os.unlink(entry.path)
                removed += 1
            except OSError:
                pass  # a read-only cache keeps them; nothing depends on it
    return removed
