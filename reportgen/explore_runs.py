"""The explorer's run folders: where one `reportgen explore` keeps its rendered views.

Each run's folder lives under the reportgen cache (not the system temp folder), is held by an
exclusive lock while the run lives and removed when it exits; the folders of killed runs
(their lock is free) are removed by the next run."""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import shutil
import tempfile
import time
from pathlib import Path

from .errors import warn
from .models import cache_dir


def work_root() -> Path:
    """Where explorers keep their rendered views: one folder per run, under the cache."""
    return cache_dir() / "explore"


class RunFolder:
    """This run's folder under :func:`work_root`, held by an exclusive lock on its ``.lock``
    file while the run lives; removed by :meth:`close` (on exit), or -- when the run was
    killed -- by the next explorer, which finds the lock free."""

    def __init__(self) -> None:
        self._own_root: Path | None = None
        try:
            self._create(work_root())
        except OSError as exc:  # a read-only or full cache: a private temporary folder instead
            self._own_root = Path(tempfile.mkdtemp(prefix="reportgen-explore-"))
            warn(
                f"cannot use the cache {work_root()} for explore's views "
                f"({exc.strerror or exc}); using {self._own_root} (removed on exit as well)"
            )
            self._create(self._own_root)
        self._closed = False
        atexit.register(self.close)

    def _create(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        clean_stale_runs(root)
        self.path = root / f"run-{os.getpid()}-{secrets.token_hex(4)}"
        self.path.mkdir()
        try:
            self._lock = _hold_lock(self.path / ".lock")
        except OSError:
            shutil.rmtree(self.path, ignore_errors=True)
            raise

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        shutil.rmtree(self._own_root or self.path, ignore_errors=True)
        if self._lock is not None:
            with contextlib.suppress(OSError):
                os.close(self._lock)
        atexit.unregister(self.close)


def _hold_lock(path: Path) -> int | None:
    """An open descriptor holding an exclusive ``flock`` on ``path`` (None without fcntl)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        import fcntl
    except ImportError:  # Windows: no lock, so folders of killed runs stay
        os.close(fd)
        return None
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


def clean_stale_runs(root: Path, *, grace_s: float = 60.0) -> list[Path]:
    """Remove the folders of explorers that are gone (their lock is free; a folder killed
    before it had a lock, once it is ``grace_s`` old). Returns what was removed."""
    try:
        import fcntl
    except ImportError:
        return []
    removed = []
    for folder in root.glob("run-*"):
        if folder.is_symlink() or not folder.is_dir():
            continue
        lock = folder / ".lock"
        try:
            fd = os.open(lock, os.O_RDWR | getattr(os, "O_NOFOLLOW", 0))
        except FileNotFoundError:
            if time.time() - folder.stat().st_mtime < grace_s:
                continue
        except OSError:
            continue
        else:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # a live explorer holds it
            finally:
                os.close(fd)
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed
