"""Opening a user's input file without hanging on it: only regular files are read.

A FIFO named ``x.toml`` in a cases folder blocks ``open()`` until a writer comes (forever),
``/dev/zero`` given as a case is read until memory runs out. The file is opened non-blocking
(a FIFO's open returns at once), checked with ``fstat`` on the open descriptor (no race with a
file swapped in between) and refused unless it is a regular file."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

#: the largest case file read (a 10,000-token prompt is about 50 kB)
MAX_CASE_BYTES = 16 << 20


class NotRegularFile(OSError):
    """The path names something other than a regular file; ``str()`` says what."""


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "a named pipe (FIFO)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def open_regular(path: str | Path) -> BinaryIO:
    """``path`` opened for binary reading; :class:`NotRegularFile` for a FIFO, a device or a
    socket, ``IsADirectoryError`` for a folder, the usual ``OSError`` otherwise."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(21, "Is a directory", str(path))
        if not stat.S_ISREG(mode):
            raise NotRegularFile(f"is {_kind(mode)}, not a file; only regular files are read")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: str | Path, limit: int = MAX_CASE_BYTES) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes (else :class:`NotRegularFile`)."""
    with open_regular(path) as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise NotRegularFile(f"is larger than {limit >> 20} MB; not a case file")
    return data
