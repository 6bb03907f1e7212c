"""The site's output folder: what `build --out` may replace, the lock, staging, permissions.

A build replaces its output folder as a whole, so it must never be pointed at something that is
not its own. It writes only into a folder that is absent, empty, or a site it built before
(recognised by the marker file :data:`MARKER` in the site root, which also lists every file the
build wrote, so files a user added to a site are never deleted either). A marker without that
list is no marker, and a folder that only looks like a site (an ``index.html``, ``.nojekyll``,
``assets/``, ``cases/``: a hand-made site, or one an older reportgen built before the marker)
is refused with the files a build would delete: nothing proves they are the build's. It refuses
input folders and their ancestors, the home directory and ``/``.

Two builds into the same folder: the second one refuses at once with a line naming the first
(pid, start time, command) -- waiting could hide a build that hangs, and a refusal is never
silently lost work. The lock is an ``fcntl.flock`` on ``<parent>/.<name>.lock`` (opened without
following links, and only when it is a regular file of its own), taken before anything is
computed and released by the kernel when the holder dies, so a SIGKILLed build never blocks the next one; that next build
then removes the staging folders the killed one left behind."""

from __future__ import annotations

import json
import os
import shutil
import stat
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from . import __version__
from .errors import ReportgenError, warn

MARKER = ".reportgen-site"
DIR_MODE = 0o755
FILE_MODE = 0o644


class OutFolderError(ReportgenError):
    """``--out`` names a folder the build must not replace."""


def _refuse(out: Path, why: str) -> OutFolderError:
    return OutFolderError(f"refusing to build the site into {out}: {why}")


def read_marker(folder: Path, *, staging: bool = False) -> dict | None:
    """The marker of a site reportgen built, or None (absent, unreadable, not a regular file,
    not ours). A site's marker must list its files (a list of relative paths); ``staging``
    also accepts the list-less marker a build writes when its staging folder starts."""
    path = folder / MARKER
    try:
        if not stat.S_ISREG(path.lstat().st_mode):
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("tool") != "reportgen":
        return None
    files = data.get("files")
    if files is None and staging:
        return data
    if not isinstance(files, list) or not all(isinstance(f, str) and f for f in files):
        return None
    return data


def _some(paths: list[str], n: int = 5) -> str:
    """``a, b, c and 4 more``: a list short enough for one line."""
    shown = ", ".join(paths[:n])
    return f"{shown} and {len(paths) - n} more" if len(paths) > n else shown


def site_files(folder: Path) -> list[str]:
    """Every file and folder below ``folder`` as sorted relative POSIX paths (links included,
    never followed)."""
    found = []

    def unreadable(exc: OSError) -> None:
        raise exc  # a folder we cannot list is never taken for an empty one

    for root, dirs, files in os.walk(folder, onerror=unreadable):
        rel = Path(root).relative_to(folder)
        for name in [*dirs, *files]:
            found.append((rel / name).as_posix())
    return sorted(found)


def write_marker(folder: Path, *, staging: bool = False) -> None:
    """Mark ``folder`` as a reportgen site: at once when staging starts (so a killed build's
    staging folder is recognisably ours), and last with the list of every file it holds."""
    (folder / MARKER).write_text("", encoding="utf-8")  # listed in its own manifest
    data: dict = {"tool": "reportgen", "version": __version__}
    if not staging:
        data["files"] = site_files(folder)
    (folder / MARKER).write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")


def _input_folders(inputs: Iterable[str | Path]) -> list[Path]:
    folders = []
    for raw in inputs:
        path = Path(raw).expanduser().absolute()
        resolved = Path(os.path.realpath(path))
        for p in {path, resolved}:
            folders.append(p if p.is_dir() else p.parent)
    return folders


def check_out_folder(out: str | Path, inputs: Iterable[str | Path] = ()) -> Path:
    """The resolved output folder, or an :class:`OutFolderError` with a one-line reason.

    Touches nothing. Refused: ``/``, the home directory and their ancestors, any input folder
    (or a case file's folder), any ancestor of an input, a file, and a non-empty folder
    that is not a reportgen site or that holds files the previous build did not write."""
    given = Path(out).expanduser()
    if given.is_symlink() and not given.exists():
        raise _refuse(given, "it is a dangling or looping symbolic link")
    resolved = Path(os.path.realpath(given))
    try:
        home = Path.home().resolve()
    except (RuntimeError, KeyError):  # no HOME and no passwd entry
        home = Path(resolved.anchor)
    if resolved == Path(resolved.anchor) or resolved in home.parents or resolved == home:
        raise _refuse(given, "it is / or your home directory; choose a new folder such as ./site")
    for folder in _input_folders(inputs):
        for candidate in {folder, Path(os.path.realpath(folder))}:
            if resolved == candidate or resolved in candidate.parents:
                raise _refuse(
                    given,
                    f"it holds the input {candidate}; the build replaces the whole folder. "
                    "Choose a folder outside your case files",
                )
    if resolved.exists() and not resolved.is_dir():
        raise _refuse(given, "it is a file, not a folder")
    if resolved.is_dir():
        try:
            entries = site_files(resolved)
        except OSError as exc:
            raise _refuse(given, f"it cannot be read ({exc.strerror or exc})") from None
        if entries:
            _check_replaceable(given, resolved, entries)
    return resolved


LEGACY_ENTRIES = {"index.html", ".nojekyll", "assets", "cases"}


def _files_only(folder: Path, entries: list[str]) -> list[str]:
    """The entries that are not folders (what a user would miss), else all of them."""
    files = [e for e in entries if not (folder / e).is_dir() or (folder / e).is_symlink()]
    return files or entries


def _check_replaceable(given: Path, folder: Path, entries: list[str]) -> None:
    """Refuse unless every entry of the non-empty ``folder`` is listed in its marker."""
    marker = read_marker(folder)
    if marker is None:
        files = _files_only(folder, entries)
        doomed = f"{len(files)} file{'s' if len(files) != 1 else ''} ({_some(files, 8)})"
        if (folder / MARKER).exists() or (folder / MARKER).is_symlink():
            raise _refuse(
                given,
                f"its {MARKER} does not list the files a build wrote, so they cannot be told "
                f"from yours; a build would delete {doomed}. Move them away or choose another "
                "--out",
            )
        if _looks_like_a_site(folder):
            raise _refuse(
                given,
                f"it is not empty and has no {MARKER} marker listing the files a build wrote "
                f"(a hand-made site, or one an older reportgen built); a build would delete "
                f"{doomed}. If they are all an old build's, delete the folder yourself; "
                "otherwise choose another --out",
            )
        raise _refuse(
            given,
            f"it is not empty ({_some(files)}) and is not a site reportgen built (no {MARKER} "
            "marker); choose an empty or new folder, or move its files away",
        )
    extra = sorted(set(entries) - set(marker["files"]))
    if extra:
        raise _refuse(
            given,
            f"it holds files the previous build did not write ({_some(extra, 1)}); "
            "move them out of the site folder first",
        )


def _looks_like_a_site(folder: Path) -> bool:
    """Nothing at its top but what a build writes, with an index.html: the shape of a site."""
    try:
        names = {p.name for p in folder.iterdir()}
    except OSError:
        return False
    return names <= LEGACY_ENTRIES and (folder / "index.html").is_file()


def site_case_ids(folder: Path) -> list[str]:
    """The case ids whose dossiers the site in ``folder`` holds, by its marker (none without)."""
    marker = read_marker(folder)
    if marker is None:
        return []
    return sorted(
        {
            f.split("/")[1]
            for f in marker["files"]
            if f.startswith("cases/") and f.count("/") >= 1 and f.split("/")[1]
        }
    )


def check_one_case_out(out: Path, case_id: str) -> None:
    """`reportgen run` writes a one-case site: refuse an ``out`` that holds a site of several
    cases (``build``'s), which it would silently replace."""
    ids = site_case_ids(out)
    if len(ids) > 1:
        raise _refuse(
            out,
            f"it holds a site of {len(ids)} cases ({_some(ids, 3)}); `reportgen run` writes a "
            f"one-case site and would replace it. Rebuild that site with `reportgen build`, or "
            f"choose another --out for {case_id}",
        )


def lock_path(out: Path) -> Path:
    return out.parent / f".{out.name}.lock"


def _open_lock(path: Path):  # noqa: ANN202 -- a text file object
    """The lock file, opened without following a link and only when it is a regular file with
    no other name (a link or hard link to a user's file is never truncated)."""
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        if path.is_symlink():
            raise ReportgenError(
                f"the lock file {path} is a symbolic link; a build never writes through one: "
                "remove it (rm) and build again"
            ) from None
        raise exc
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_nlink > 1:
        os.close(fd)
        what = "is not a regular file" if not stat.S_ISREG(info.st_mode) else "has another name"
        raise ReportgenError(
            f"the lock file {path} {what} (a link to another file?); a build never writes "
            "through one: remove it (rm) and build again"
        )
    os.set_blocking(fd, True)
    return open(fd, "r+", encoding="utf-8")  # noqa: SIM115 -- held for the whole build


@contextmanager
def build_lock(out: Path, command: str = "reportgen build") -> Iterator[None]:
    """Hold the lock of ``out`` (resolved) for a whole build; refuse if another build holds it."""
    import fcntl

    path = lock_path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        handle = _open_lock(path)
    except OSError as exc:
        raise ReportgenError(
            f"cannot create the lock file {path} ({exc.strerror or exc}); choose an --out in a "
            "folder you can write"
        ) from None
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise ReportgenError(
                f"another build is writing {out} ({holder}); wait for it to finish or "
                "choose another --out"
            ) from None
        handle.seek(0)
        handle.truncate()
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime())
        handle.write(f"pid {os.getpid()}, started {started}: {command}"[:500] + "\n")
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            handle.flush()
    finally:
        handle.close()  # releases the flock


def staging_prefix(out: Path) -> str:
    return f".{out.name}.staging-"


def previous_path(out: Path) -> Path:
    return out.with_name(f".{out.name}.previous")


def _ours(folder: Path, *, staging: bool = True) -> bool:
    """A staging folder the build made (empty, or holding the marker it starts with), or a
    previous site moved aside (``staging=False``: its marker lists every file it holds)."""
    try:
        if not folder.is_dir() or folder.is_symlink():
            return False
        if staging:
            return read_marker(folder, staging=True) is not None or not any(folder.iterdir())
        marker = read_marker(folder)
        if marker is None:
            return not any(folder.iterdir())  # an empty --out moved aside
        return set(site_files(folder)) <= set(marker["files"])
    except OSError:
        return False


def remove_site(folder: Path) -> None:
    """Delete a site the build owns, its marker last: a build killed meanwhile leaves a folder
    that is still recognisably ours (marked, holding only listed files)."""
    for entry in folder.iterdir():
        if entry.name != MARKER:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    shutil.rmtree(folder)


def clean_stale(out: Path) -> None:
    """Remove what a killed build left beside ``out`` (call it holding the lock, so no live
    build owns them). A site moved aside at the moment of the kill is put back first."""
    previous = previous_path(out)
    if not out.exists() and _ours(previous, staging=False):
        previous.rename(out)
    for folder in out.parent.glob(staging_prefix(out) + "*"):
        if _ours(folder):
            warn(f"removing {folder.name}, left behind by an interrupted build")
            shutil.rmtree(folder, ignore_errors=True)
    if _ours(previous, staging=False):
        warn(f"removing {previous.name}, left behind by an interrupted build")
        remove_site(previous)
    if previous.exists() or previous.is_symlink():  # the swap would delete it: not ours
        raise _refuse(
            out,
            f"{previous} is in the way (the build moves the old site there while it swaps the "
            "new one in, and it is not a site a build moved aside); move it away",
        )


def make_world_readable(root: Path) -> None:
    """Folders 0755, files 0644, whatever the umask or tempfile's 0700 said: the site is served
    by web servers that run as another user."""
    os.chmod(root, DIR_MODE)
    for base, dirs, files in os.walk(root):
        for name in dirs:
            path = Path(base) / name
            if not path.is_symlink():
                os.chmod(path, DIR_MODE)
        for name in files:
            path = Path(base) / name
            if not stat.S_ISLNK(path.lstat().st_mode):
                os.chmod(path, FILE_MODE)
