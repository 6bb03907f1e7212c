"""Deterministic case files for collected pairs and the per-benchmark summary.json.

A written case starts with a comment line holding the sha256 of the rest of the file; a file
whose content no longer matches its hash (edited by hand), or that has no such line, is kept
unless ``force``."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..cache_files import replace_atomically
from ..cases import Case, case_toml, parse_case

HEADER = "# collected by `reportgen collect`; edits are kept (re-collect overwrites only with --force). sha256="


def collected_case_toml(case: Case) -> str:
    """The case file (:func:`reportgen.cases.case_toml`) under a line holding its sha256."""
    body = case_toml(case)
    return f"{HEADER}{_digest(body)}\n{body}"


def restated(
    text: str, path: Path, *, compare: Sequence[str] = (), case_id: str | None = None
) -> str:
    """A collected case file with what the collect run adds at writing time: ``compare``, the
    models the case also runs on (``collect --compare``; the case's own model left out), so the
    dossier shows whether another model, e.g. the other size of the family, makes the same
    choice; ``case_id``, its id with ``collect --id-suffix`` (two models' cases of one benchmark
    in one site need distinct ids)."""
    _, _, body = text.partition("\n")
    case = parse_case(tomllib.loads(body), str(path))
    changes: dict[str, object] = {}
    if compare:
        changes["compare"] = tuple(m for m in compare if m != case.model)
    if case_id is not None:
        changes["id"] = case_id
    return collected_case_toml(dataclasses.replace(case, **changes))


def _digest(body: str) -> str:
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def is_hand_edited(path: Path) -> bool:
    """True when ``path`` exists and is not exactly what collect wrote."""
    if not path.exists():
        return False
    text = path.read_text(encoding="utf-8")
    first, _, body = text.partition("\n")
    if not first.startswith(HEADER):
        return True
    return first[len(HEADER) :].strip() != _digest(body)


def write_case(path: Path, text: str, force: bool = False) -> str:
    """Write a case file: 'written', 'unchanged' or 'kept' (hand-edited, not forced)."""
    if path.exists():
        if path.read_text(encoding="utf-8") == text:
            return "unchanged"
        if is_hand_edited(path) and not force:
            return "kept"
    path.parent.mkdir(parents=True, exist_ok=True)
    replace_atomically(path, text)
    return "written"


def write_summary(path: Path, summary: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    replace_atomically(path, json.dumps(summary, indent=1, ensure_ascii=False) + "\n")


def read_summary(path: Path) -> dict[str, Any] | None:
    """An earlier summary.json, or None when it cannot be read as one (it is then replaced)."""
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return summary if isinstance(summary, dict) and "runs" in summary else None
