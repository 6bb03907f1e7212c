"""Case files: every error names the file, the field and the problem."""

import pytest

from reportgen.cases import load_case, load_cases
from reportgen.errors import CaseError

GOOD = """
id = "ok-case"
model = "smollm2-135m-instruct"
prompt = "List three primary colors."
target = " Y"
contrast = " Blue"
segments = { instruction = [0, 3] }
tags = { benchmark = "custom" }
[graph]
prune = "cum_mass"
p = 0.9
"""


def write(tmp_path, text, name="case.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_good_case_parses(tmp_path):
    case = load_case(write(tmp_path, GOOD))
    assert (
        case.id == "ok-case"
        and case.question.mode == "logit_diff"
        and case.question.strategy == "by_ref_token"
    )
    assert case.segments == {"instruction": (0, 3)} and case.graph.p == 0.9
    assert case.title == "ok-case"


@pytest.mark.parametrize(
    "change, field, problem",
    [
        (('id = "ok-case"', 'id = "Bad Id"'), "id", "must match"),
        (('model = "smollm2-135m-instruct"\n', ""), "model", "required"),
        (('prompt = "List three primary colors."', 'prompt = "  "'), "prompt", "must not be empty"),
        (('target = " Y"', "target = 3.5"), "target", "must be a string or an integer"),
        (
            ('contrast = " Blue"\n', 'mode = "logit_diff"\n'),
            "contrast",
            "required for mode logit_diff",
        ),
        (
            ("segments = { instruction = [0, 3] }", "segments = { instruction = [3, 1] }"),
            "segments.instruction",
            "span",
        ),
        (("p = 0.9", "p = 1.5"), "graph.p", "must be in"),
        (('prune = "cum_mass"', 'prune = "magic"'), "graph.prune", "must be one of"),
        (('tags = { benchmark = "custom" }', "tagz = 1"), "tagz", "unknown field"),
        (('target = " Y"', 'target = " Y"\nchat = "yes"'), "chat", "true or false"),
        (('target = " Y"', 'target = " Y"\nk = true'), "k", "boolean"),
    ],
)
def test_errors_name_file_and_field(tmp_path, change, field, problem):
    path = write(tmp_path, GOOD.replace(*change))
    with pytest.raises(CaseError) as info:
        load_case(path)
    message = str(info.value)
    assert str(path) in message and f"field '{field}'" in message and problem in message


def test_invalid_toml_names_the_file(tmp_path):
    path = write(tmp_path, 'id = "x\nprompt =')
    with pytest.raises(CaseError, match="invalid TOML") as info:
        load_case(path)
    assert str(path) in str(info.value)


def test_one_broken_file_does_not_hide_the_others(tmp_path):
    write(tmp_path, GOOD, "a.toml")
    write(tmp_path, GOOD.replace("ok-case", "other"), "b.toml")
    write(tmp_path, "garbage = [", "c.toml")
    write(tmp_path, GOOD, "d.toml")  # duplicate id
    cases, errors = load_cases([tmp_path])
    assert [c.id for c in cases] == ["ok-case", "other"]
    assert len(errors) == 2
    assert "c.toml" in str(errors[0]) and "duplicate id" in str(errors[1])


def test_shipped_cases_are_valid():
    cases, errors = load_cases(["cases"])
    assert not errors, errors
    assert len(cases) >= 1
