"""One question, whoever asks it (issue 30): a case file, the command line's flags and the
explorer's form give the same Question, hence the same objective on the model; one rule for
the default objective; one token contract; one case-file writer."""

import dataclasses
import tomllib

import click
import pytest
from click.testing import CliRunner
from tiny_models import save_tiny_llama

from reportgen.cases import Case, GraphSettings, case_toml, load_case, parse_case
from reportgen.cli.explain import question_options
from reportgen.errors import CaseError
from reportgen.models import load_model
from reportgen.pipeline import prepare_question
from reportgen.question import PromptSpec, Question, QuestionError, token_value
from reportgen.toml_values import toml_value

PROMPT = {"prompt": "the capital of france is", "chat": True, "prefix": "the capital", "bos": True}
#: what is asked -> the resolved (mode, strategy, k) and whether the objective has a contrast
ASKED = {
    "contrast": ({"target": "paris", "contrast": "lyon"}, ("logit_diff", "by_ref_token", 10)),
    "no contrast": ({"target": "paris"}, ("max_logit", None, 10)),
    "strategy": ({"target": "paris", "strategy": "demean"}, ("logit_diff", "demean", 10)),
    "strategy and k": (
        {"target": "paris", "contrast": "lyon", "strategy": "by_topk_avg", "k": 5},
        ("logit_diff", "by_topk_avg", 5),
    ),
    "max_logit with contrast": (
        {"target": "id:7", "contrast": "lyon", "mode": "max_logit"},
        ("max_logit", None, 10),
    ),
}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_llama(tmp_path_factory.mktemp("tiny-question"))


def from_case_file(folder, model_dir, asked):
    lines = [f"id = {toml_value('q')}", f"model = {toml_value(model_dir)}"]
    lines += [f"{name} = {toml_value(value)}" for name, value in {**PROMPT, **asked}.items()]
    path = folder / "q.toml"
    path.write_text("\n".join(lines) + "\n")
    return load_case(path).question


def from_flags(asked):
    """Through click's parsing of the real options of `attribute` and `graph`."""
    asked_by = []

    @click.command()
    @question_options
    def probe(flags):
        asked_by.append(flags.question())

    argv = ["--prompt", PROMPT["prompt"], "--chat", "--prefix", PROMPT["prefix"], "--bos"]
    for name, value in asked.items():
        argv += [f"--{name}", str(value)]
    result = CliRunner().invoke(probe, argv)
    assert result.exit_code == 0, result.output
    return asked_by[0]


def from_explorer(asked):
    from reportgen.explore_questions import question_from_json

    return question_from_json({**PROMPT, **asked, "contrast": asked.get("contrast")})


@pytest.mark.parametrize("name", list(ASKED))
def test_case_file_flags_and_explorer_ask_the_same_question(name, model_dir, tmp_path):
    asked, (mode, strategy, k) = ASKED[name]
    questions = [from_case_file(tmp_path, model_dir, asked), from_flags(asked)]
    questions.append(from_explorer(asked))
    assert questions[0] == questions[1] == questions[2]
    question = questions[0]
    assert (question.mode, question.strategy, question.k) == (mode, strategy, k)
    assert question.prompt == PromptSpec(PROMPT["prompt"], True, PROMPT["prefix"], None, True)
    loaded = load_model(model_dir)
    tokenizer = loaded.tokenizer
    objectives = {prepare_question(loaded, q).objective for q in questions}
    assert len(objectives) == 1
    (objective,) = objectives
    target = 7 if asked["target"] == "id:7" else tokenizer.convert_tokens_to_ids("paris")
    contrast = tokenizer.convert_tokens_to_ids("lyon") if "contrast" in asked else None
    assert (objective.mode, objective.strategy, objective.k) == (mode, strategy, k)
    assert (objective.target_id, objective.contrast_id) == (target, contrast)


def test_the_default_objective_is_one_rule():
    rule = Question.resolve_objective
    assert rule(None, None, "lyon") == ("logit_diff", "by_ref_token")
    assert rule(None, None, None) == ("max_logit", None)
    assert rule(None, "demean", None) == ("logit_diff", "demean")
    assert rule("max_logit", None, "lyon") == ("max_logit", None)
    assert rule("logit_diff", "by_topk_avg", None) == ("logit_diff", "by_topk_avg")
    prompt = PromptSpec("x")
    # a question holds the resolved values: said explicitly or left to the rule, it is equal
    assert Question(prompt, "a", "b") == Question(prompt, "a", "b", "logit_diff", "by_ref_token")
    assert Question(prompt, "a") == Question(prompt, "a", None, "max_logit")
    assert Question(prompt, "id:3") == Question(prompt, 3)


@pytest.mark.parametrize(
    "value, expected",
    [(" Paris", " Paris"), (7, 7), ("id:7", 7), ("id: 12", 12), ("idle", "idle"), (None, None)],
)
def test_one_token_contract(value, expected):
    assert token_value(value, "target") == expected


@pytest.mark.parametrize(
    "value, words",
    [
        ("id:-5", "token ids are >= 0"),
        (-5, "token ids are >= 0"),
        ("id:x", "after 'id:' give a token id such as id:718"),
        ("", "must not be empty"),
        (True, "got a boolean"),
        (3.5, "must be a string or an integer"),
    ],
)
def test_one_token_contract_refuses(value, words):
    with pytest.raises(QuestionError) as info:
        token_value(value, "contrast")
    assert info.value.field == "contrast" and words in info.value.problem


def test_each_front_end_names_the_field_of_the_same_problem(model_dir, tmp_path):
    """A strategy by_ref_token without a contrast: one problem, said where it was asked."""
    asked = {"target": "paris", "strategy": "by_ref_token"}
    problem = "is required for mode logit_diff with strategy by_ref_token"
    with pytest.raises(CaseError) as info:
        from_case_file(tmp_path, model_dir, asked)
    assert str(info.value) == f"{tmp_path / 'q.toml'}: field 'contrast': {problem}"

    @click.command()
    @question_options
    def probe(flags):
        flags.question()

    argv = ["--prompt", "p", "--target", "paris", "--strategy", "by_ref_token"]
    result = CliRunner().invoke(probe, argv)
    assert result.exit_code == 1 and result.output == f"Error: --contrast {problem}\n"
    from reportgen.explore_questions import question_from_json

    with pytest.raises(QuestionError, match=f"^contrast: {problem}$"):
        question_from_json({"prompt": "p", **asked})


def write_and_read(case):
    text = case_toml(case)
    return text, parse_case(tomllib.loads(text), case.path)


@pytest.mark.parametrize(
    "name, lines",
    [
        ("contrast", ['target = "paris"', 'contrast = "lyon"']),
        ("no contrast", ['target = "paris"']),
        ("strategy", ['target = "paris"', 'strategy = "demean"']),
        ("strategy and k", ['target = "paris"', 'contrast = "lyon"', 'strategy = "by_topk_avg"']),
        ("max_logit with contrast", ["target = 7", 'contrast = "lyon"', 'mode = "max_logit"']),
    ],
)
def test_the_writer_states_only_what_the_defaults_do_not_give(name, lines, tmp_path):
    asked, _ = ASKED[name]
    question = Question(PromptSpec(**PROMPT), **asked)
    case = Case(str(tmp_path / "w.toml"), "w", "W", "org/model", question)
    text, read = write_and_read(case)
    body = text.splitlines()
    expected_k = ["k = 5"] if "k" in asked else []
    assert body == [
        'id = "w"',
        'title = "W"',
        'model = "org/model"',
        "chat = true",
        'prompt = "the capital of france is"',
        'prefix = "the capital"',
        "bos = true",
        *lines,
        *expected_k,
    ]
    assert read == case


def test_the_writer_writes_every_part_of_a_case(tmp_path):
    graph = GraphSettings(
        layers=(0, 1),
        p=0.9,
        pinned=(("emb", 1), ("1", 2)),
        supernodes=(("the question", (("emb", 0), ("emb", 1))),),
        ablation="zero",
    )
    case = Case(
        str(tmp_path / "all.toml"),
        "all",
        "All of it",
        "org/model",
        Question(PromptSpec("a prompt", prefix="so far", prefix_ids=[5, 6]), "x", "y"),
        description="Said in full.",
        segments={"question": (0, 2)},
        relevant=((1, 2),),
        tags={"benchmark": "b"},
        compare=("org/other",),
        graph=graph,
        source={"item": "B/1", "skipped": None},
        notes="a note",
    )
    text, read = write_and_read(case)
    assert read == dataclasses.replace(case, source={"item": "B/1"})  # None: not written
    assert text.endswith(
        'notes = "a note"\n\n[graph]\nlayers = [0, 1]\np = 0.9\npinned = [["emb", 1], ["1", 2]]\n'
        'supernodes = [{ label = "the question", nodes = [["emb", 0], ["emb", 1]] }]\n'
        'ablation = "zero"\n\n[source]\nitem = "B/1"\n'
    )


def test_a_question_and_its_error_cross_a_process_boundary_intact():
    """Workers get the driver's parsed Case by pickle: no validation is skipped or redone wrong."""
    import pickle

    question = Question(PromptSpec("p", prefix="x", prefix_ids=[3]), "id:4", "lyon")
    assert pickle.loads(pickle.dumps(question)) == question
    error = pickle.loads(pickle.dumps(QuestionError("k", "must be >= 1, got 0")))
    assert (error.field, error.problem, str(error)) == (
        "k",
        "must be >= 1, got 0",
        "k: must be >= 1, got 0",
    )
