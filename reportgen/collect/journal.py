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


class Journal:
    """The records of earlier runs (``gens`` by item id; ``pins`` of this ``search_key``)
    and the appends of this one."""

    def __init__(self, path: Path, search_key: str) -> None:
        self.path = path
        records = read_jsonl(path)
        self.gens: dict[str, dict[str, Any]] = {
            r["item"]: r for r in records if r.get("kind") == "gen"
        }
        self.pins: dict[str, dict[str, Any]] = {
            r["item"]: r
            for r in records
            if r.get("kind") == "pin" and r.get("search") == search_key
        }

    def add(self, record: dict[str, Any]) -> None:
        """Stream ``record`` to the file (at once: an interruption keeps what finished)."""
        append_jsonl(self.path, record)
        (self.gens if record["kind"] == "gen" else self.pins)[record["item"]] = record
