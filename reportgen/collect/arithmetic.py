"""Arithmetic word problems of one, two and three steps from a seeded generator (reproducible),
with known answers; the final answer is extracted and checked with ``math-verify``."""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

from ..errors import ReportgenError
from .benchmarks import Benchmark, Item, Verdict

NAMES = ["Tom", "Anna", "Ben", "Lily", "Sam", "Mia", "Jack", "Emma", "Leo", "Zoe"]
HE = {"Tom": "He", "Ben": "He", "Sam": "He", "Jack": "He", "Leo": "He"}
THINGS = ["apples", "marbles", "books", "stickers", "coins", "pencils", "cookies", "cards"]
SEED = 2024
ANSWER_FORMAT = "Reply with just the number."
OPERATORS = {"+", "-", "*", "/", "x", "×", "÷"}
PER_STEPS = 16
#: an equation the model is writing: "28 - 4 = " or "7 * 3 + 2 = 2" (result digits so far)
_EQUATION = re.compile(r"((?:\d+\s*[-+*/x×÷]\s*)+\d+)\s*=\s*(\d*)$")


def _correct_digits(text: str) -> str | None:
    """Where ``text`` ends inside the result of an equation, the correct rest of that result
    (digits); None otherwise. Arithmetic on the numbers the model itself wrote, so the first
    slip of a chain of steps is found even when earlier numbers were already wrong."""
    match = _EQUATION.search(text)
    if match is None:
        return None
    expression = re.sub(r"[x×]", "*", match.group(1)).replace("÷", "/")
    try:
        value = eval(expression, {"__builtins__": {}}, {})  # noqa: S307 - digits and + - * / only
    except (ZeroDivisionError, SyntaxError):
        return None
    if value != int(value) or value < 0:
        return None
    want, written = str(int(value)), match.group(2)
    return want[len(written) :] if want.startswith(written) and want != written else None


def _step(rng: random.Random, value: int, pronoun: str) -> tuple[str, int]:
    """One more operation on the running total: (sentence, new total)."""
    kind = rng.choice(["add", "sub", "mul"] if value <= 30 else ["add", "sub"])
    if kind == "add":
        n = rng.randint(5, 40)
        return f"{pronoun} gets {n} more.", value + n
    if kind == "sub" and value > 6:
        n = rng.randint(2, value - 3)
        return f"{pronoun} gives away {n}.", value - n
    n = rng.randint(2, 4)
    return f"{pronoun} then gets enough to have {n} times as many.", value * n


def generate(steps: int, count: int = PER_STEPS, seed: int = SEED) -> list[Item]:
    """``count`` problems needing ``steps`` operations; the same seed gives the same items."""
    rng = random.Random(f"{seed}-{steps}")
    items = []
    for i in range(count):
        name, thing = rng.choice(NAMES), rng.choice(THINGS)
        pronoun = HE.get(name, "She")
        value = rng.randint(20, 90)
        sentences = [f"{name} has {value} {thing}."]
        for _ in range(steps):
            sentence, value = _step(rng, value, pronoun)
            sentences.append(sentence)
        sentences.append(f"How many {thing} does {name} have now?")
        items.append(
            Item(
                id=f"{steps}step-{i:04d}",
                slug=f"arith-{steps}step-{i:04d}",
                prompt=" ".join(sentences),
                data={"answer": str(value)},
            )
        )
    return items


def check_answer(output: str, answer: str) -> Verdict:
    """The last number of the output, compared with the known answer by math-verify."""
    try:
        from math_verify import ExprExtractionConfig, parse, verify
    except ImportError:
        raise ReportgenError(
            "the arithmetic benchmark needs math-verify: pip install 'reportgen[collect]'"
        ) from None
    gold = parse(answer, extraction_config=[ExprExtractionConfig()])
    pred = parse(output, extraction_config=[ExprExtractionConfig()])
    if not pred:
        return Verdict(False, f"no answer found (expected {answer})")
    got = str(pred[0])
    if verify(gold, pred):
        return Verdict(True, f"answer {got} = {answer}")
    return Verdict(False, f"answer {got} != {answer}")


class Arithmetic(Benchmark):
    name = "arithmetic"
    max_new_tokens = 128
    search_version = 5

    def items(self, data: Path | None = None) -> list[Item]:
        return [item for steps in (1, 2, 3) for item in generate(steps)]

    def prompt(self, item: Item, chat: bool) -> str:
        return f"{item.prompt} {ANSWER_FORMAT}"

    def answer_end(self, text: str, chat: bool) -> int | None:
        numbers = list(re.finditer(r"\d+", text))
        return numbers[-1].end() if numbers else None

    def priority(self, item: Item, output: str, offset: int, chosen: str, alternative: str) -> int:
        """First the correct digit where the model miscomputes an equation it writes ("16 - 4
        = 1" where 12 is right: the first slip), then an operator swapped for another and the
        leading digit of a number the model computed (one not in the problem), then its other
        digits, then other digits, then the rest."""
        correct = _correct_digits(output[:offset] + chosen[: len(chosen) - len(chosen.lstrip())])
        if correct is not None and alternative.strip() and correct.startswith(alternative.strip()):
            return -1
        if chosen.strip() in OPERATORS and alternative.strip() in OPERATORS:
            return 0  # "33 - 13" where the problem adds
        if not any(ch.isdigit() for ch in chosen + alternative):
            return 3
        start = offset + (len(chosen) - len(chosen.lstrip()))
        match = re.match(r"\d+", output[start:])
        if match is None:
            return 2
        given = set(re.findall(r"\d+", item.prompt))
        leading = start == 0 or not output[start - 1].isdigit()
        if match.group() in given:
            return 2
        return 0 if leading else 1

    def verify(self, item: Item, output: str, chat: bool) -> Verdict:
        return check_answer(output, item.data["answer"])

    def source(self, item: Item) -> dict[str, Any]:
        return {"answer": item.data["answer"]}
