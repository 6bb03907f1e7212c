"""The user's own items (``--data FILE.jsonl``), one JSON object a line:
``{"id": ..., "prompt": ..., <one verifier>}`` where the verifier is ``"tests"`` (Python run after
the code of the reply, in the sandbox), ``"answer"`` (a reference answer checked with
math-verify) or ``"instruction_id_list"`` + ``"kwargs"`` (IFEval checkers)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ReportgenError
from .arithmetic import check_answer, strict_check, wrong_answer
from .benchmarks import Benchmark, Item, Verdict, jsonl_rows, slugify
from .humaneval import extract_code
from .instructions import check_instructions, checked_instructions
from .sandbox import run_python


class JsonlBenchmark(Benchmark):
    name = "jsonl"
    max_new_tokens = 256

    def items(self, data: Path | None = None) -> list[Item]:
        if data is None:
            raise ReportgenError("the jsonl benchmark needs --data FILE.jsonl")
        items: list[Item] = []
        seen: set[str] = set()
        for n, row in jsonl_rows(data):
            if not isinstance(row, dict) or not isinstance(row.get("prompt"), str):
                raise ReportgenError(f"{data}:{n}: needs a string field 'prompt'")
            kinds = [k for k in ("tests", "answer", "instruction_id_list") if k in row]
            if len(kinds) != 1:
                raise ReportgenError(
                    f"{data}:{n}: needs exactly one of 'tests', 'answer', 'instruction_id_list'"
                )
            if isinstance(row.get("id"), dict | list):
                raise ReportgenError(f"{data}:{n}: 'id' must be a string or number")
            for name in ("tests", "answer"):
                if name in row and not isinstance(row[name], str | int | float):
                    raise ReportgenError(f"{data}:{n}: {name!r} must be text")
            item_id = str(row.get("id", n))
            if item_id in seen:
                raise ReportgenError(f"{data}:{n}: duplicate id {item_id!r}")
            seen.add(item_id)
            verifier: dict[str, Any] = {"kind": kinds[0]}
            if kinds[0] == "tests":
                verifier["tests"] = str(row["tests"])
            elif kinds[0] == "answer":
                verifier["answer"] = str(row["answer"])
            else:  # checked now: an unknown id would otherwise fail after the generation
                ids, kwargs = checked_instructions(
                    f"{data}:{n}", row["instruction_id_list"], row.get("kwargs")
                )
                verifier["instruction_id_list"] = ids
                verifier["kwargs"] = kwargs
            items.append(
                Item(
                    id=item_id,
                    slug="jsonl-" + slugify(item_id),
                    prompt=row["prompt"],
                    data=verifier,
                )
            )
        return items

    def verify(self, item: Item, output: str, chat: bool) -> Verdict:
        kind = item.data["kind"]
        if kind == "tests":
            result = run_python(extract_code(output) + "\n\n" + item.data["tests"] + "\n")
            return Verdict(result.passed, result.message)
        if kind == "answer":
            return check_answer(output, item.data["answer"])
        return check_instructions(
            output, item.data["instruction_id_list"], item.data["kwargs"], item.prompt
        )

    def check_recovery(
        self, item: Item, output: str, chat: bool, *, finished: bool, swap: int
    ) -> Verdict:
        if item.data["kind"] == "answer":  # the arithmetic rules: no lucky numbers
            return strict_check(
                output, item.data["answer"], finished=finished, swap=swap, problem=item.prompt
            )
        return super().check_recovery(item, output, chat, finished=finished, swap=swap)

    def check_failure(self, item: Item, output: str, chat: bool, *, finished: bool) -> Verdict:
        if item.data["kind"] == "answer":
            return wrong_answer(output, item.data["answer"], finished=finished)
        return super().check_failure(item, output, chat, finished=finished)

    def source(self, item: Item) -> dict[str, Any]:
        return {k: v for k, v in item.data.items()}
