"""The strict verdicts of issue 19, without a model: a collected arithmetic failure must be a
recovery for the right reason. Negative examples are the ten pins shipped before (their recorded
outputs, tests/data/lucky_arithmetic_pins.json), each rejected for its own pattern; positive
examples are outputs that compute their way to the gold answer."""

import json
from fractions import Fraction
from pathlib import Path

import pytest

from reportgen.collect.arithmetic import (
    Arithmetic,
    check_answer,
    equations,
    evaluate,
    final_answers,
    strict_check,
    wrong_answer,
)
from reportgen.collect.benchmarks import Benchmark, Item, Verdict

pytest.importorskip("math_verify")

LUCKY = json.loads(
    (Path(__file__).parent / "data" / "lucky_arithmetic_pins.json").read_text(encoding="utf-8")
)["cases"]


@pytest.mark.parametrize("row", LUCKY, ids=[r["case"] for r in LUCKY])
def test_every_lucky_pin_shipped_before_is_rejected_for_its_pattern(row):
    output, answer = row["recovering_output"], row["answer"]
    # the old checker took each of them as a recovery
    assert check_answer(output, answer).passed
    verdict = strict_check(
        output, answer, finished=row["recovering_finished"], swap=len(row["prefix"])
    )
    assert not verdict.passed
    assert verdict.criterion == row["rejected_for"], verdict.message
    # their target paths are wrong answers (arith-3step-0000's loops to the budget: no clean failure)
    target = wrong_answer(row["failing_output"], answer, finished=row["failing_finished"])
    assert target.passed == row["failing_finished"], target.message


def _row(case):
    return next(r for r in LUCKY if r["case"] == case)


def test_the_patterns_of_the_issue_by_name():
    # "He has 12 + 12" cut at the budget: even read as finished, its chain writes false equations
    # ("53 - 32 = 12") and its last words are an expression never evaluated
    cut = _row("arith-2step-0007")
    assert (
        strict_check(
            cut["recovering_output"], "24", finished=True, swap=len(cut["prefix"])
        ).criterion
        == "false equation"
    )
    assert final_answers(cut["recovering_output"])[-1][0] == "12 + 12"
    honest_until_the_end = "Leo has 61 - 16 = 45 cards.\nHe has 45 - 21 = 24 cards.\nHe has 12 + 12"
    verdict = strict_check(honest_until_the_end, "24", finished=True, swap=20)
    assert (
        verdict.criterion == "unevaluated answer"
        and check_answer(honest_until_the_end, "24").passed
    )
    # "#### 1 / The answer is: 4": two final answers, the last one was taken
    two = _row("arith-3step-0007")
    assert [a for a, _ in final_answers(two["recovering_output"])] == ["1", "4"]
    # "47 - 8 = 33 apples. #### 4": the answer digit swapped in after the chain
    after = _row("arith-2step-0014")
    verdict = strict_check(
        after["recovering_output"], "4", finished=True, swap=len(after["prefix"])
    )
    assert verdict.criterion == "answer does not follow" and "47 - 8 = 33" in verdict.message
    # the swapped-in token makes its own equation false: "16 - 4 = 8" (12 was right)
    own = _row("arith-1step-0014")
    verdict = strict_check(own["recovering_output"], "24", finished=True, swap=len(own["prefix"]))
    assert verdict.criterion == "false equation" and "16 - 4 = 8" in verdict.message
    # with the model's own "12" kept the equations from the swap on hold, but they compute
    # with 16, the result of the false "28 - 4 = 16" before the swap: a number from nowhere
    kept = own["recovering_output"].replace("16 - 4 = 8", "16 - 4 = 12")
    problem = Arithmetic().prompt(
        next(i for i in Arithmetic().items() if i.id == "1step-0014"), True
    )
    verdict = strict_check(kept, "24", finished=True, swap=len(own["prefix"]), problem=problem)
    assert verdict.criterion == "number from nowhere" and "'16 - 4 = 12'" in verdict.message
    assert "computes with 16," in verdict.message
    # an equation before the swapped token's line does not count, one on it does
    prefix_slip = "Emma has 50 - 25 = 11 pencils.\nShe has 25 - 11 = 14 pencils.\n#### 14"
    assert strict_check(
        prefix_slip, "14", finished=True, swap=prefix_slip.index("14 pencils")
    ).passed
    assert strict_check(prefix_slip, "14", finished=True, swap=0).criterion == "false equation"


@pytest.mark.parametrize(
    ("output", "answer", "swap_at"),
    [
        (
            "Leo has 61 - 16 = 45 cards left.\nHe gives away 21, so he has 45 - 21 = 24 cards left.\n"
            "#### 24\nThe answer is: 24",
            "24",
            "45 cards",
        ),
        ("Ben has 62 + 12 = 74 coins.\nHe gives away 26, so he has 74 - 26 = 48 coins.", "48", "+"),
        ("Mia has 3 * 7 = 21 stickers, then 21 + 9 = 30.\nThe answer is 30.", "30", "21 +"),
        ("Zoe has 61 / 2 = 30.5 on average; 30.5 * 2 = 61.\n#### 61", "61", "/"),
        ("He has 11 - 25 = -14, so 14 + 0 = 14.\n#### 14", "14", "-14"),
        ("Total: 1,000 + 250 = 1,250 coins.\n#### 1,250", "1250", "250"),
    ],
)
def test_outputs_that_compute_their_way_to_the_gold_answer_pass(output, answer, swap_at):
    verdict = strict_check(output, answer, finished=True, swap=output.index(swap_at))
    assert verdict.passed, verdict.message
    assert not strict_check(output, answer, finished=False, swap=0).passed


def test_a_recovery_on_a_real_item_passes_with_its_problem_numbers():
    bench = Arithmetic()
    item = next(i for i in bench.items() if i.id == "2step-0007")  # 61 - 16 - 21 = 24
    good = (
        "Leo has 61 - 16 = 45 cards left.\nHe gives away 21, so he has 45 - 21 = 24 cards.\n#### 24"
    )
    verdict = bench.check_recovery(item, good, True, finished=True, swap=good.index("45"))
    assert verdict.passed and "45 - 21 = 24" in verdict.message
    stray = good.replace("45 - 21 = 24", "45 - 21 = 24 and 30 - 6 = 24")
    assert (
        bench.check_recovery(item, stray, True, finished=True, swap=0).criterion
        == "number from nowhere"
    )


def test_exact_arithmetic_of_written_equations():
    assert evaluate("61 / 2") == Fraction(61, 2) and evaluate("2 + 3 * 4") == 14
    assert evaluate("20 - 4 - 3") == 13 and evaluate("3 x 4") == 12 and evaluate("8 ÷ 0") is None
    eqs = equations("So 46 * 3 = 132, and 12 = 12, then 7 + 5 = 12 = 6 * 2. Page 3-4.")
    assert [(e.text, e.true) for e in eqs] == [
        ("46 * 3 = 132", False),
        ("7 + 5 = 12 = 6 * 2", True),
    ]
    assert not equations("She has 5 / 0 = 3 apples")[0].true
    assert final_answers("I do not know.") == []
    assert strict_check("I do not know.", "4", finished=True).criterion == "no answer"
    assert strict_check("24", "24", finished=True).criterion == "no computation"


def test_a_clean_failure_finishes_with_another_answer():
    assert wrong_answer("5 + 5 = 10.\n#### 10", "12", finished=True).passed
    assert wrong_answer("I do not know.", "12", finished=True).passed
    assert wrong_answer("5 + 7 = 12.\n#### 12", "12", finished=True).criterion == "target passes"
    assert wrong_answer("5 + 5 = 10 and", "12", finished=False).criterion == "target not finished"


def test_the_arithmetic_benchmark_uses_the_strict_rules():
    bench, item = Arithmetic(), Arithmetic().items()[0]
    answer = item.data["answer"]
    lucky = f"#### 1\nThe answer is: {answer}"
    assert bench.verify(item, lucky, True).passed  # the benchmark's own check: last number
    assert not bench.check_recovery(item, lucky, True, finished=True, swap=0).passed
    assert bench.check_failure(item, "1 + 1 = 2.\n#### 2", True, finished=True).passed != (
        answer == "2"
    )


class _Plain(Benchmark):
    name = "plain"

    def verify(self, item, output, chat):
        return Verdict("ok" in output, "ok" if "ok" in output else "no ok")


def test_default_verdicts_need_a_finished_output():
    bench, item = _Plain(), Item("x", "x", "p")
    assert bench.check_recovery(item, "ok", False, finished=True, swap=0).passed
    assert (
        bench.check_recovery(item, "ok", False, finished=False, swap=0).criterion == "not finished"
    )
    assert (
        bench.check_recovery(item, "no", False, finished=True, swap=0).criterion
        == "contrast path fails"
    )
    assert bench.check_failure(item, "no", False, finished=True).passed
    assert bench.check_failure(item, "no", False, finished=False).criterion == "target not finished"
    assert bench.check_failure(item, "ok", False, finished=True).criterion == "target passes"


def test_a_chain_that_computes_with_list_markers_is_a_number_from_nowhere():
    """The one pin the strict rules still let through in the re-collection of 2026-12-01
    (arith-3step-0002: 61 - 58 = 3, 3 * 4 = 12, 12 - 6 = 6): its equations are true and end on
    the gold 6, but they compute with a list marker ("1.") and never with the problem's
    numbers. Operands must come from the problem or from true equations before them."""
    bench = Arithmetic()
    item = next(i for i in bench.items() if i.id == "3step-0002")
    lucky = (
        "1. Sam has 6 books.\n2. He gives away 4 times as many books as Sam.\n"
        "3. So, 1 + 4 = 5 books.\n4. Sam has 6 books now.\n\nSo, 1 + 5 = 6 books."
    )
    verdict = bench.check_recovery(item, lucky, True, finished=True, swap=0)
    assert verdict.criterion == "number from nowhere" and "1 + 4 = 5" in verdict.message
    grounded = (
        "Sam has 61 - 58 = 3 books.\nThen he has 3 * 4 = 12 books.\n"
        "He gives away 6, so 12 - 6 = 6 books.\n#### 6"
    )
    assert bench.check_recovery(item, grounded, True, finished=True, swap=0).passed
    # a result only grounds what follows when its equation is true
    slipped = grounded.replace("3 * 4 = 12", "3 * 4 = 13").replace("12 - 6 = 6", "13 - 7 = 6")
    assert not bench.check_recovery(item, slipped, True, finished=True, swap=0).passed
