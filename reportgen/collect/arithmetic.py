"""Arithmetic word problems of one, two and three steps from a seeded generator (reproducible),
with known answers. ``verify`` is the benchmark's own check (the output's final number, compared with
``math-verify``); a collected case must pass the strict one (:func:`strict_check`): an output that
finishes, one final answer, the gold one, from the output's own last computation, and every
equation from the swapped token's line on true -- a recovery for the right reason, not a lucky
number."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from fractions import Fraction
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
    search_version = 6  # 6: equations compute only with grounded numbers

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

    def check_recovery(
        self, item: Item, output: str, chat: bool, *, finished: bool, swap: int
    ) -> Verdict:
        return strict_check(
            output, item.data["answer"], finished=finished, swap=swap, problem=item.prompt
        )

    def check_failure(self, item: Item, output: str, chat: bool, *, finished: bool) -> Verdict:
        return wrong_answer(output, item.data["answer"], finished=finished)

    def source(self, item: Item) -> dict[str, Any]:
        return {"answer": item.data["answer"]}


# --- the strict verdict: a recovery for the right reason, not a lucky last number -----------

_NUM = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
_OP = r"[-+*/×÷]|(?<= )x(?= )"
_EXPR = rf"-?(?:{_NUM})(?:[ \t]*(?:{_OP})[ \t]*(?:{_NUM}))*"
#: "a op b = c", "a op b op c = d", "a = b op c = d": sides joined by "=", on one line
_CHAIN = re.compile(rf"(?<![\d.,])({_EXPR})((?:[ \t]*=[ \t]*{_EXPR})+)")
#: "#### 24", "The answer is: 24", "\boxed{24}": an answer the output states as final
_MARKED = re.compile(rf"(?:####|answer is:?|\\boxed\{{)[ \t]*\$?[ \t]*({_EXPR})", re.IGNORECASE)
_OPERATION = re.compile(rf"\d[ \t]*(?:{_OP})[ \t]*-?\d")


@dataclass(frozen=True)
class Equation:
    """One written equation: its text, where it starts in the output, each side's exact value
    (None: a division by zero, never true)."""

    text: str
    start: int
    sides: tuple[Fraction | None, ...]

    @property
    def true(self) -> bool:
        return None not in self.sides and len(set(self.sides)) == 1

    @property
    def result(self) -> Fraction | None:
        return self.sides[-1]


def _number(text: str) -> Fraction:
    return Fraction(text.replace(",", ""))


def _numbers(text: str) -> set[Fraction]:
    return {_number(m) for m in re.findall(rf"(?<![\d.,])(?:{_NUM})", text)}


def evaluate(expression: str) -> Fraction | None:
    """The exact value of ``a op b op c`` (``*`` and ``/`` before ``+`` and ``-``, then left
    to right), in fractions, so "61 / 2" is 61/2 and never 30 or 31; None: division by zero."""
    parts = re.findall(rf"(?<![\d.,])-?(?:{_NUM})|{_OP}", expression.strip())
    terms, signs = [_number(parts[0])], []
    for op, number in zip(parts[1::2], parts[2::2], strict=False):
        value = _number(number)
        if op in "*x×":
            terms[-1] *= value
        elif op in "/÷":
            if value == 0:
                return None
            terms[-1] /= value
        else:
            signs.append(op)
            terms.append(value)
    total = terms[0]
    for op, value in zip(signs, terms[1:], strict=True):
        total = total + value if op == "+" else total - value
    return total


def equations(text: str) -> list[Equation]:
    """Every equation written in ``text`` that computes something ("12 = 12" does not)."""
    found = []
    for match in _CHAIN.finditer(text):
        sides = [match.group(1), *re.split(r"[ \t]*=[ \t]*", match.group(2).strip())[1:]]
        if any(_OPERATION.search(side) for side in sides):
            found.append(Equation(match.group(0), match.start(), tuple(evaluate(s) for s in sides)))
    return found


def final_answers(text: str) -> list[tuple[str, int]]:
    """The answers ``text`` states as final, as (text, offset): the marked ones ("#### 24",
    "The answer is 24"); where there is none, the last number -- or the unevaluated
    expression it ends ("he has 12 + 12")."""
    marked = [(m.group(1), m.start(1)) for m in _MARKED.finditer(text)]
    if marked:
        return marked
    numbers = list(re.finditer(rf"(?<![\d.,])(?:{_NUM})", text))
    if not numbers:
        return []
    last = numbers[-1]
    expression = re.search(rf"(?:(?:{_NUM})[ \t]*(?:{_OP})[ \t]*)+$", text[: last.start()])
    if expression is not None:
        return [(text[expression.start() : last.end()], expression.start())]
    return [(last.group(), last.start())]


def strict_check(
    output: str, answer: str, *, finished: bool, swap: int = 0, problem: str | None = None
) -> Verdict:
    """A recovery for the right reason: the output finishes (end of sequence, not the token
    budget); every equation from the line of character ``swap`` (where the swapped token
    starts) on is true and, given the ``problem``, computes only with the problem's numbers and
    the results of true equations before it; it states exactly one final answer, a number, equal to ``answer``; and
    that number is the result of the last equation before it. ``criterion`` names the first
    rule broken (the collect funnel counts them)."""
    if not finished:
        return Verdict(False, "not finished: cut at the token budget", "not finished")
    line_start = output.rfind("\n", 0, swap) + 1
    # what an equation may compute with: the problem's numbers and the results of the true
    # equations before it -- not any number the output happened to write (a list marker "1.",
    # a claim "Sam has 6 books" from nowhere)
    known = _numbers(problem) if problem is not None else set()
    for eq in equations(output):
        if eq.start >= line_start:
            if not eq.true:
                return Verdict(
                    False, f"false equation from the swap on: {eq.text!r}", "false equation"
                )
            if problem is not None:
                operands = _numbers(re.split(r"[ \t]*=", eq.text, maxsplit=1)[0])
                if not operands <= known:
                    stray = ", ".join(str(n) for n in sorted(operands - known))
                    return Verdict(
                        False,
                        f"{eq.text!r} computes with {stray}, neither in the problem nor the "
                        "result of a true equation before it",
                        "number from nowhere",
                    )
        if eq.true and eq.result is not None:
            known.add(eq.result)
    answers = final_answers(output)
    if not answers:
        return Verdict(False, "no final answer", "no answer")
    for text, _ in answers:
        if _OPERATION.search(text):
            return Verdict(False, f"final answer {text!r} is never evaluated", "unevaluated answer")
    if len({_number(text) for text, _ in answers}) > 1:
        listed = ", ".join(text for text, _ in answers)
        return Verdict(False, f"more than one final answer ({listed})", "multiple answers")
    text, offset = answers[0]
    if _number(text) != _number(answer):
        return Verdict(False, f"answer {text} != {answer}", "wrong answer")
    before = [eq for eq in equations(output) if eq.start < offset]
    if not before:
        return Verdict(False, f"answer {text} follows from no computation", "no computation")
    last = before[-1]
    if last.result != _number(text):
        return Verdict(
            False,
            f"answer {text} does not follow from the last computation {last.text!r}",
            "answer does not follow",
        )
    return Verdict(
        True, f"answer {text} = {answer} from {last.text!r}; equations from the swap on hold"
    )


def wrong_answer(output: str, answer: str, *, finished: bool) -> Verdict:
    """A failure for the benchmark's reason (``passed``: it is one): the output finishes and
    does not state the gold answer as final."""
    if not finished:
        return Verdict(False, "not finished: cut at the token budget", "target not finished")
    answers = final_answers(output)
    if not answers:
        return Verdict(True, f"finishes without a final answer (expected {answer})")
    stated = [text for text, _ in answers]
    gold = _number(answer)
    if any(not _OPERATION.search(t) and _number(t) == gold for t in stated):
        return Verdict(False, f"states the gold answer {answer}", "target passes")
    return Verdict(True, f"finishes with answer {stated[-1]}, not {answer}")
