"""The journal of a collect run: one JSONL per (benchmark, model, generation settings) in the
cache, a ``gen`` record per generated item and a ``pin`` record per finished search. Only the
driver writes it (workers return records), so a run resumes the same way whatever ran them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .generate import append_jsonl, read_jsonl


def work_dir() -> Path:
    from ..models import cache_dir

    return cache_dir() / "collect"


def _records(path: Path) -> list[dict[str, Any]]:
    """An earlier run's records; a journal that cannot be read (a folder or FIFO in its place,
    unreadable) is one warning and a run from the start."""
    from ..cache_files import read_regular, warn_once

    if not path.exists() and not path.is_symlink():
        return []
    try:
        read_regular(path)  # a regular file: never block on a FIFO
        records = read_jsonl(path)
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        warn_once(f"ignoring the unreadable collect journal {path} ({reason}); starting afresh")
        return []
    return [r for r in records if isinstance(r, dict) and "item" in r]


class Journal:
    """The records of earlier runs (``gens`` by item id; ``pins`` of this ``search_key``)
    and the appends of this one."""

    def __init__(self, path: Path, search_key: str) -> None:
        self.path = path
        records = _records(path)
        self.gens: dict[str, dict[str, Any]] = {
            r["item"]: r for r in records if r.get("kind") == "gen"
        }
        self.pins: dict[str, dict[str, Any]] = {
            r["item"]: r
            for r in records
            if r.get("kind") == "pin" and r.get("search") == search_key
        }

    def add(self, record: dict[str, Any]) -> None:
        """Stream ``record`` to the file (at once: an interruption keeps what finished). A
        cache that cannot be written costs one warning: the run goes on, without resuming."""
        from ..cache_files import cannot_write, writable

        if writable():
            try:
                append_jsonl(self.path, record)
            except OSError as exc:
                cannot_write(self.path, exc)
        (self.gens if record["kind"] == "gen" else self.pins)[record["item"]] = record
