"""Instruction following: IFEval-style prompts with verifiable constraints, checked strictly by the
IFEval checkers of the ``if-verifiable`` package. The prompts are our own (``data/instructions.jsonl``:
``key``, ``prompt``, ``instruction_id_list``, ``kwargs``)."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

from ..errors import ReportgenError
from .benchmarks import Benchmark, Item, Verdict, jsonl_rows, slugify

DATA = Path(__file__).parent / "data" / "instructions.jsonl"
# these two need NLTK data (punkt) that cannot be downloaded offline
OFFLINE_UNSUPPORTED = {"length_constraints:number_sentences", "change_case:capital_word_frequency"}


def _registry() -> dict[str, Any]:
    try:
        import datasets  # noqa: F401
    except ImportError:
        # if-verifiable imports `datasets` at the top for downloading data we do not use;
        # it is installed with --no-deps, so give it a stand-in that refuses to download
        stub = types.ModuleType("datasets")

        def load_dataset(*args: Any, **kwargs: Any) -> Any:
            raise ReportgenError("datasets is not installed (reportgen ships its own prompts)")

        stub.load_dataset = load_dataset  # type: ignore[attr-defined]
        sys.modules.setdefault("datasets", stub)
    try:
        from if_verifiable.ifeval.instructions_registry import INSTRUCTION_DICT
    except ImportError as exc:
        raise ReportgenError(
            f"the instructions benchmark needs if-verifiable, nltk, langdetect, immutabledict "
            f"({exc}): pip install 'reportgen[collect]'"
        ) from None
    return INSTRUCTION_DICT


def checked_instructions(where: str, ids: Any, kwargs: Any) -> tuple[list[str], list[dict]]:
    """``instruction_id_list`` and ``kwargs`` of one item, checked before anything is generated:
    a list of known IFEval ids (available offline) and one table of arguments per id. Errors
    name ``where`` (file:line)."""
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        raise ReportgenError(
            f"{where}: 'instruction_id_list' must be a non-empty list of IFEval instruction ids "
            f"(strings), got {ids!r}"[:300]
        )
    if kwargs is None:
        kwargs = [{} for _ in ids]
    if (
        not isinstance(kwargs, list)
        or len(kwargs) != len(ids)
        or not all(isinstance(k, dict) for k in kwargs)
    ):
        raise ReportgenError(
            f"{where}: 'kwargs' must be a list of {len(ids)} tables, one per instruction id"
        )
    registry = _registry()
    for iid in ids:
        if iid in OFFLINE_UNSUPPORTED:
            raise ReportgenError(
                f"{where}: instruction {iid} needs NLTK data that is not available offline"
            )
        if iid not in registry:
            raise ReportgenError(
                f"{where}: unknown IFEval instruction id {iid!r} (known: e.g. "
                f"{', '.join(sorted(registry)[:3])}, ...)"
            )
    return list(ids), [dict(k) for k in kwargs]


def check_instructions(
    response: str, instruction_ids: list[str], kwargs: list[dict[str, Any]], prompt: str
) -> Verdict:
    """Strict IFEval check: every instruction must be followed by the response as it is."""
    registry = _registry()  # first: it stands in for `datasets` where that is missing
    from if_verifiable.common import evaluate_instructions

    for iid in instruction_ids:
        if iid in OFFLINE_UNSUPPORTED:
            raise ReportgenError(f"instruction {iid} needs NLTK data that is not available offline")
        if iid not in registry:
            raise ReportgenError(f"unknown IFEval instruction id {iid!r}")
    results, scores = evaluate_instructions(response, instruction_ids, kwargs, prompt, registry)
    if not results:
        return Verdict(False, "empty response")
    failed = [r.instruction_id for r in results if not r.strict_pass]
    if failed:
        return Verdict(False, "not followed: " + ", ".join(failed))
    return Verdict(True, "all followed: " + ", ".join(r.instruction_id for r in results))


def read_items(path: Path) -> list[Item]:
    items = []
    for n, row in jsonl_rows(path):
        where = f"{path}:{n}"
        if not isinstance(row, dict) or not isinstance(row.get("prompt"), str):
            raise ReportgenError(f"{where}: needs a string field 'prompt'")
        if "key" not in row or isinstance(row["key"], dict | list):
            raise ReportgenError(f"{where}: needs a field 'key' (a string or number)")
        key = str(row["key"])
        ids, kwargs = checked_instructions(where, row.get("instruction_id_list"), row.get("kwargs"))
        items.append(
            Item(
                id=key,
                slug="ifeval-" + slugify(key),
                prompt=row["prompt"],
                data={"instruction_id_list": ids, "kwargs": kwargs},
            )
        )
    return items


class Instructions(Benchmark):
    name = "instructions"
    max_new_tokens = 128

    def items(self, data: Path | None = None) -> list[Item]:
        return read_items(data or DATA)

    def priority(self, item: Item, output: str, offset: int, chosen: str, alternative: str) -> int:
        # the usual first violation: a comma, a capital letter, a quote, an early end
        return 0 if any(ch in ',"' or ch.isupper() for ch in chosen) or not chosen.strip() else 1

    def verify(self, item: Item, output: str, chat: bool) -> Verdict:
        return check_instructions(
            output, item.data["instruction_id_list"], item.data["kwargs"], item.prompt
        )

    def source(self, item: Item) -> dict[str, Any]:
        return {
            "instruction_id_list": item.data["instruction_id_list"],
            "kwargs": item.data["kwargs"],
        }
