"""The adapters without a model: registry, instruction checkers on hand-made texts, the
arithmetic generator and math-verify, the jsonl format, and the case writer."""

import dataclasses
import json
import tomllib

import pytest

from reportgen.cases import Case, parse_case
from reportgen.collect import registry
from reportgen.collect.arithmetic import Arithmetic, check_answer, generate
from reportgen.collect.benchmarks import Benchmark
from reportgen.collect.instructions import DATA, OFFLINE_UNSUPPORTED, _registry, check_instructions
from reportgen.collect.jsonl import JsonlBenchmark
from reportgen.collect.registry import get_benchmark, register
from reportgen.collect.writer import collected_case_toml, is_hand_edited, write_case
from reportgen.errors import ReportgenError
from reportgen.question import PromptSpec, Question

pytest.importorskip("langdetect")  # with if-verifiable (its own import needs `datasets`)
pytest.importorskip("math_verify")


def test_registry_refuses_overwrites_and_unknown_names(monkeypatch):
    assert isinstance(get_benchmark("arithmetic"), Arithmetic)
    with pytest.raises(ValueError, match="already registered"):
        register("arithmetic", Benchmark)
    with pytest.raises(ReportgenError, match="unknown benchmark"):
        get_benchmark("no-such-benchmark")
    monkeypatch.setitem(registry.BENCHMARKS, "x", Benchmark)  # cleaned up by monkeypatch
    with pytest.raises(ValueError):
        register("Bad Name", Benchmark)


@pytest.mark.parametrize(
    ("ids", "kwargs", "good", "bad"),
    [
        (["punctuation:no_comma"], [{}], "Paris is lovely in spring.", "Paris, France."),
        (["change_case:english_lowercase"], [{}], "the moon is bright.", "The moon is bright."),
        (["change_case:english_capital"], [{}], "THE SEA IS BLUE.", "THE sea IS BLUE."),
        (
            ["detectable_format:number_bullet_lists"],
            [{"num_bullets": 2}],
            "* umbrella\n* boots",
            "* umbrella\n* boots\n* coat",
        ),
        (
            ["startend:end_checker"],
            [{"end_phrase": "That is all."}],
            "Sunny today. That is all.",
            "That is all. Sunny today.",
        ),
        (
            ["keywords:frequency"],
            [{"keyword": "banana", "frequency": 2, "relation": "at least"}],
            "banana and banana",
            "one banana",
        ),
        (
            ["keywords:forbidden_words"],
            [{"forbidden_words": ["cold"]}],
            "Winter is quiet.",
            "Winter is cold.",
        ),
        (
            ["length_constraints:number_words"],
            [{"num_words": 5, "relation": "less than"}],
            "Tea is warm.",
            "Tea is a warm and lovely drink.",
        ),
        (["detectable_format:json_format"], [{}], '{"capital": "Rome"}', "Rome is the capital."),
        (["startend:quotation"], [{}], '"Study every day."', "Study every day."),
        (
            ["change_case:english_lowercase", "punctuation:no_comma"],
            [{}, {}],
            "rain falls softly",
            "rain falls, softly",
        ),
    ],
)
def test_instruction_checkers_on_hand_made_texts(ids, kwargs, good, bad):
    assert check_instructions(good, ids, kwargs, "prompt").passed
    verdict = check_instructions(bad, ids, kwargs, "prompt")
    assert not verdict.passed and "not followed" in verdict.message


def test_instruction_data_file():
    rows = [json.loads(line) for line in DATA.read_text().splitlines() if line.strip()]
    assert len(rows) >= 40
    assert len({r["key"] for r in rows}) == len(rows)
    known = _registry()
    for row in rows:
        assert len(row["instruction_id_list"]) == len(row["kwargs"])
        for iid in row["instruction_id_list"]:
            assert iid in known and iid not in OFFLINE_UNSUPPORTED
    with pytest.raises(ReportgenError, match="NLTK"):
        check_instructions("One. Two.", ["length_constraints:number_sentences"], [{}], "p")
    assert not check_instructions("", ["punctuation:no_comma"], [{}], "p").passed


def test_arithmetic_generator_is_reproducible_and_its_answers_check():
    assert generate(2) == generate(2)
    assert generate(2, seed=1) != generate(2)
    items = Arithmetic().items()
    assert len(items) == 48 and len({i.slug for i in items}) == 48
    for item in items:
        answer = item.data["answer"]
        assert int(answer) >= 0
        assert check_answer(f"So the answer is {answer}.", answer).passed
        assert not check_answer(f"So the answer is {int(answer) + 1}.", answer).passed
    one = generate(1, 1)[0]
    numbers = [int(w.strip(".")) for w in one.prompt.split() if w.strip(".").isdigit()]
    op = "gives away" in one.prompt
    assert (
        int(one.data["answer"]) == (numbers[0] - numbers[1] if op else numbers[0] + numbers[1])
        or "times" in one.prompt
    )
    assert not check_answer("I do not know.", "4").passed


def test_jsonl_items_and_verifiers(tmp_path):
    data = tmp_path / "mine.jsonl"
    data.write_text(
        "\n".join(
            json.dumps(r)
            for r in [
                {"id": "sum", "prompt": "Write add(a, b).", "tests": "assert add(2, 3) == 5"},
                {"id": "q1", "prompt": "What is 6 * 7?", "answer": "42"},
                {
                    "prompt": "No commas.",
                    "instruction_id_list": ["punctuation:no_comma"],
                    "kwargs": [{}],
                },
            ]
        )
    )
    bench = JsonlBenchmark()
    items = bench.items(data)
    assert [i.slug for i in items] == ["jsonl-sum", "jsonl-q1", "jsonl-3"]
    assert bench.verify(items[0], "```python\ndef add(a, b):\n    return a + b\n```", True).passed
    assert not bench.verify(items[0], "def add(a, b):\n    return a - b", True).passed
    assert bench.verify(items[1], "It is 42.", True).passed
    assert not bench.verify(items[2], "a, b", True).passed
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "x"}\n')
    with pytest.raises(ReportgenError, match="exactly one"):
        bench.items(bad)


def test_case_writer_round_trips_awkward_text_and_is_deterministic(tmp_path):
    awkward = 'a "quote" \\ back\nslash\ttab \x7f del \x01 ctrl — ünïcode ```'
    source = {
        "benchmark": "b",
        "item": "B/1",
        "kwargs": [{"n": 2, "relation": "at least"}, {}],
        "answer": "4",
    }
    case = Case(
        path="x.toml",
        id="x-1",
        title="x-1",
        model="m",
        question=Question(PromptSpec(awkward, True, awkward, (1, 2)), 3, 4),
        tags={"benchmark": "b", "pattern": ""},
        source=source,
    )
    text = collected_case_toml(case)
    assert text == collected_case_toml(dataclasses.replace(case, source=dict(source)))
    header, body = text.split("\n", 1)
    assert body.splitlines()[:4] == ['id = "x-1"', 'title = "x-1"', 'model = "m"', "chat = true"]
    assert body.splitlines()[6:] == [
        "prefix_ids = [1, 2]",
        "target = 3",
        "contrast = 4",
        'tags = { benchmark = "b", pattern = "" }',
        "",
        "[source]",
        'benchmark = "b"',
        'item = "B/1"',
        'kwargs = [{ n = 2, relation = "at least" }, {}]',
        'answer = "4"',
    ]
    data = tomllib.loads(text)
    assert data["prompt"] == awkward and data["source"]["kwargs"][0] == {
        "n": 2,
        "relation": "at least",
    }
    read = parse_case(data, "x.toml")
    assert read.source["item"] == "B/1" and read.question == case.question
    assert read.question.prompt.prefix_ids == (1, 2)
    path = tmp_path / "x-1.toml"
    assert write_case(path, text) == "written" and not is_hand_edited(path)
    assert write_case(path, text) == "unchanged"
    path.write_text(text.replace("B/1", "B/2"))
    assert is_hand_edited(path)
    assert write_case(path, text) == "kept" and "B/2" in path.read_text()
    assert write_case(path, text, force=True) == "written" and path.read_text() == text
    path.write_text(text.split("\n", 1)[1])  # no header: written by hand
    assert write_case(path, text) == "kept"


def test_cli_collect_errors_are_one_line(tmp_path):
    from click.testing import CliRunner

    from reportgen.cli import main

    runner = CliRunner()
    result = runner.invoke(main, ["collect", "no-such-benchmark", "--out", str(tmp_path)])
    assert result.exit_code != 0 and "unknown benchmark" in result.output
    assert len(result.output.strip().splitlines()) == 1
    result = runner.invoke(
        main, ["collect", "arithmetic", "--items", "9step-0001", "--out", str(tmp_path)]
    )
    assert result.exit_code != 0 and "unknown item" in result.output
    result = runner.invoke(main, ["collect", "jsonl", "--out", str(tmp_path)])
    assert result.exit_code != 0 and "--data" in result.output


def test_arithmetic_tries_computed_numbers_first():
    bench = Arithmetic()
    item = generate(1, 1)[0]  # e.g. "Leo has 74 cards. He gives away 50. ..."
    given = [w for w in item.prompt.replace(".", " ").split() if w.isdigit()]
    output = f"He has {given[0]} - {given[1]} = 10 left."
    computed = output.index("10")
    assert bench.priority(item, output, computed - 1, " 1", " 9") == 0  # leading digit, new number
    assert bench.priority(item, output, computed + 1, "0", "4") == 1  # later digit of it
    assert bench.priority(item, output, output.index(given[0]) - 1, " " + given[0][0], " 9") == 2
    assert bench.priority(item, output, 0, "He", "She") == 3
    assert bench.priority(item, output, output.index("-") - 1, " -", " +") == 0


def test_arithmetic_tries_the_correct_digit_of_a_miscomputed_equation_first():
    from reportgen.collect.arithmetic import _correct_digits

    assert _correct_digits("so 28 - 4 = ") == "24"
    assert _correct_digits("so 28 - 4 = 2") == "4"
    assert _correct_digits("16 x 3 + 2 = 5") == "0"  # precedence; the model's own numbers
    assert _correct_digits("28 - 4 = 24") is None  # complete
    assert _correct_digits("28 - 4 = 3") is None  # already wrong: a later digit cannot fix it
    assert _correct_digits("7 / 2 = ") is None and _correct_digits("3 - 9 = ") is None
    assert _correct_digits("He has 28 coins.") is None
    bench = Arithmetic()
    item = generate(1, 1)[0]
    output = "She has 28 - 4 = 16 coins, then 16 - 4 = 12."
    first = output.index("16")  # the first slip: 24 is right
    assert bench.priority(item, output, first - 1, " 1", " 2") == -1
    assert bench.priority(item, output, first - 1, " 1", " 3") == 0
    assert bench.priority(item, output, first, "1", "2") == -1  # the space was its own token
    assert bench.priority(item, output, first + 1, "6", "4") == 1  # "1" is already wrong
    later = output.index("12")  # right for the model's own 16: nothing to fix there
    assert bench.priority(item, output, later - 1, " 1", " 2") == 0


def test_humaneval_priority_tries_statements_before_comments_before_prose():
    from reportgen.collect.humaneval import HumanEval

    bench = HumanEval()
    item = bench.items()[0]
    output = (
        "Here is the function:\n```python\ndef f(x):\n"
        '    """Double x."""\n    # scale it\n    return x * 2\n```\nDone.'
    )

    def at(text: str) -> int:
        return bench.priority(item, output, output.index(text), text, "?")

    assert at("return") == 0
    assert at("def f") == 0
    assert at("Double") == 1  # inside the docstring
    assert at("scale") == 1  # a comment line
    assert at("Here") == 2  # prose before the code block
    # a base model's completion (no fence) is code from its first character
    assert bench.priority(item, "    return x * 2\n", 4, "return", "?") == 0


def test_user_jsonl_with_a_broken_line_names_file_and_line(tmp_path):
    from reportgen.collect.instructions import read_items
    from reportgen.errors import ReportgenError

    data = tmp_path / "mine.jsonl"
    data.write_text('{"prompt": "Say hi.", "answer": "hi"}\n\n{"prompt": oops}\n')
    for read in (JsonlBenchmark().items, read_items):
        with pytest.raises(ReportgenError, match=r"mine\.jsonl:3: invalid JSON"):
            read(data)
