"""Issue 14: validation matches what the build needs, and no per-case error aborts a
--keep-going build; every failure is one line naming the file and the field."""

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from tiny_models import save_tiny_llama

from reportgen import build as build_module
from reportgen.cases import load_case
from reportgen.cli import main
from reportgen.errors import CaseError

GOOD = """
id = "{id}"
model = "{model}"
prompt = "the capital of france is"
target = "paris"
contrast = "lyon"
bos = true
segments = {{ question = [1, 4] }}
"""


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_llama(tmp_path_factory.mktemp("tiny-safety-cases"))


def case_text(model, case_id="case-a", **replace):
    text = GOOD.format(id=case_id, model=model)
    for old, new in replace.items():
        text = text.replace(old, new)
    return text


SEG = "segments = { question = [1, 4] }"  # the last line: a [graph] table may follow it
VALIDATE_ERRORS = [
    # (what the line in the case becomes, field, words of the problem)
    ('id = "case-a"', 'id = "case-a\\n"', "id", "must match"),
    ('id = "case-a"', f'id = "{"a" * 300}"', "id", "at most 100"),
    ('id = "case-a"', 'id = "Case-A"', "id", "must match"),
    ('contrast = "lyon"', 'contrast = "paris"', "contrast", "same as field 'target'"),
    ('target = "paris"\ncontrast = "lyon"', "target = 7\ncontrast = 7", "contrast", "'target'"),
    (SEG, SEG + "\n[graph]\np = nan", "graph.p", "in (0, 1]"),
    (SEG, SEG + "\n[graph]\np = inf", "graph.p", "in (0, 1]"),
    (SEG, SEG + "\n[graph]\np = 0.0", "graph.p", "in (0, 1]"),
    (SEG, SEG + "\n[graph]\nthreshold = -1.0", "graph.threshold", ">= 0"),
    (SEG, SEG + "\n[graph]\nthreshold = inf", "graph.threshold", "finite"),
    (SEG, SEG + "\n[graph]\nnode_threshold = nan", "graph.node_threshold", "finite"),
    ("bos = true", "bos = true\nk = 0", "k", ">= 1"),
    ("bos = true", "bos = true\nrelevant = [[3, 1]]", "relevant[0]", "span"),
    ("bos = true", "bos = true\nprefix_ids = [-1]", "prefix_ids", "non-negative"),
    ('target = "paris"', "target = -5", "target", ">= 0"),
    # issue 31: what the graph step refused with "unexpected ValueError", refused by validate
    (SEG, SEG + "\n[graph]\nlayers = []", "graph.layers", "is empty"),
    (SEG, SEG + "\n[graph]\nlayers = [5]", "graph.layers", "layer 5 does not exist"),
    (SEG, SEG + '\n[graph]\nlayers = [0]\nmethod = "closed"', "graph.method", "every layer"),
    (SEG, SEG + "\n[graph]\nlayers = [0]\nsplit = true", "graph.split", "cannot be combined"),
    ('target = "paris"', 'target = "id:x"', "target", "after 'id:' give a token id"),
]


@pytest.mark.parametrize("old, new, field, problem", VALIDATE_ERRORS)
def test_validate_rejects_what_the_build_cannot_use(tmp_path, model_dir, old, new, field, problem):
    path = tmp_path / "case.toml"
    path.write_text(case_text(model_dir).replace(old, new))
    with pytest.raises(CaseError) as info:
        load_case(path)
    assert info.value.field == field and problem in info.value.problem
    result = CliRunner().invoke(main, ["validate", str(path)])
    lines = result.output.strip().splitlines()
    assert result.exit_code == 1 and lines[0].startswith(f"error: {path}: field '{field}'")
    assert len(lines) == 2 and lines[1] == "0 valid, 1 invalid"


def odd_files(folder: Path, model_dir: str) -> dict[str, str]:
    """Files a careless user leaves in a cases folder -> words their error must contain."""
    folder.mkdir(exist_ok=True)
    (folder / "x.toml").mkdir()  # a folder named like a case file
    (folder / "loop.toml").symlink_to("loop.toml")  # a symbolic link loop
    (folder / "dangling.toml").symlink_to("nowhere.toml")
    (folder / "latin1.toml").write_bytes(b'id = "caf\xe9"\n')
    (folder / "sub").mkdir()
    (folder / "sub" / "back").symlink_to("..")  # a folder loop
    os.mkfifo(folder / "fifo.toml")  # opening it for reading would wait for a writer forever
    return {
        "fifo.toml": "is a named pipe (FIFO), not a file",
        "x.toml": "is a folder",
        "loop.toml": "cannot be read",
        "dangling.toml": "not found",
        "latin1.toml": "not UTF-8",
    }


def test_validate_reports_odd_files_one_line_each(tmp_path, model_dir):
    cases = tmp_path / "cases"
    expected = odd_files(cases, model_dir)
    (cases / "good.toml").write_text(case_text(model_dir))
    result = CliRunner().invoke(main, ["validate", str(cases)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    for name, words in expected.items():
        (line,) = [x for x in result.output.splitlines() if f"{name}:" in x]
        assert line.startswith("error: ") and words in line, line
    assert result.output.strip().splitlines()[-1] == f"1 valid, {len(expected)} invalid"


RUNTIME_ERRORS = {
    # file name -> (case text changes, words of its failure line)
    "beyond-relevant.toml": ({"bos = true": "bos = true\nrelevant = [[2, 99]]"}, "relevant[0]"),
    "beyond-segment.toml": ({"[1, 4]": "[1, 99]"}, "segments.question"),
    "same-token.toml": ({'contrast = "lyon"': 'contrast = "paris lyon"'}, "same token"),
    "vocab.toml": (
        {"bos = true": 'bos = true\nprefix = "x"\nprefix_ids = [5000]'},
        "outside the vocabulary",
    ),
    "no-model.toml": ({"model = ": 'model = "./no-such-model" #'}, "does not exist"),
    "unknown-word.toml": ({'target = "paris"': 'target = "zebra"'}, "not in the vocabulary"),
}


def test_keep_going_survives_every_kind_of_per_case_error(tmp_path, model_dir, monkeypatch):
    cases = tmp_path / "cases"
    expected = odd_files(cases, model_dir)
    (cases / "good.toml").write_text(case_text(model_dir))
    (cases / "newline.toml").write_text(case_text(model_dir, "x").replace('"x"', '"x\\n"'))
    (cases / "long.toml").write_text(case_text(model_dir, "b" * 300))
    expected |= {"newline.toml": "field 'id'", "long.toml": "field 'id'"}
    for i, (name, (changes, words)) in enumerate(RUNTIME_ERRORS.items()):
        (cases / name).write_text(case_text(model_dir, f"case-{i}", **changes))
        expected[name] = words
    # a bug in the computing code is that case's failure too, not the build's
    (cases / "bug.toml").write_text(case_text(model_dir, "case-bug"))
    expected["bug.toml"] = "unexpected RuntimeError: boom"
    import reportgen.compute as compute_module  # the runner looks compute_case up at call time

    real = compute_module.compute_case

    def buggy(case, *args, **kwargs):
        if case.id == "case-bug":
            raise RuntimeError("boom")
        return real(case, *args, **kwargs)

    monkeypatch.setattr(compute_module, "compute_case", buggy)
    out = tmp_path / "site"
    result = CliRunner().invoke(
        main, ["build", str(cases), "--out", str(out), "--keep-going", "--no-pdf"]
    )
    assert result.exit_code == 1 and "Traceback" not in result.output
    failed = [line for line in result.output.splitlines() if line.startswith("FAILED ")]
    assert len(failed) == len(expected), result.output
    for name, words in expected.items():
        (line,) = [x for x in failed if f"/{name}:" in x]
        assert words in line, line
    assert (out / "cases" / "case-a" / "index.html").exists()
    index = (out / "index.html").read_text()
    assert all(name in index for name in expected)
    # without --keep-going: the first error, in one line, and no site
    result = CliRunner().invoke(main, ["build", str(cases), "--out", str(tmp_path / "s2")])
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "s2").exists()


def test_a_model_path_resolves_against_the_case_file(tmp_path, model_dir):
    project = tmp_path / "project"
    (project / "cases" / "deep").mkdir(parents=True)
    os.symlink(model_dir, project / "tiny")
    (project / "cases" / "deep" / "a.toml").write_text(case_text("../../tiny"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.chdir(elsewhere)
    try:
        case = load_case(project / "cases" / "deep" / "a.toml")
        assert case.model == str((project / "tiny").resolve())
        report = build_module.build(
            [project / "cases"], tmp_path / "site", progress=False, pdf=False
        )
        assert report.built == ["case-a"]
    finally:
        os.chdir(tmp_path)
    for spec in ("smollm2-135m-instruct", "org/name", str(Path(model_dir).resolve())):
        (project / "b.toml").write_text(case_text(spec))
        assert load_case(project / "b.toml").model == spec


def run(*args):
    return CliRunner().invoke(main, list(args))


def test_negative_token_id_and_same_target_contrast_on_the_command_line(model_dir, tmp_path):
    out = tmp_path / "a.json"
    flags = ["attribute", "--model", model_dir, "--prompt", "the capital of france is"]
    result = run(*flags, "--target", "id:-5", "--json", str(out))
    assert result.exit_code == 1 and "token ids are >= 0" in result.output
    assert len(result.output.strip().splitlines()) == 1
    result = run(*flags, "--target", "paris", "--contrast", "paris lyon", "--json", str(out))
    assert result.exit_code == 1 and "same token" in result.output and "contrast" in result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert not out.exists()  # refused before anything is written
    result = run(*flags, "--target", "id:7", "--json", str(out))
    assert result.exit_code == 0 and json.loads(out.read_text())["target"]["id"] == 7


def test_a_page_that_cannot_be_rendered_does_not_sink_a_keep_going_build(
    tmp_path, model_dir, monkeypatch
):
    import reportgen.render.site as site

    cases = tmp_path / "cases"
    cases.mkdir()
    (cases / "a.toml").write_text(case_text(model_dir))
    (cases / "b.toml").write_text(case_text(model_dir, "case-b"))
    real = site.render_dossier_page

    def broken(result, *args, **kwargs):
        if result.case_id == "case-b":
            raise KeyError("graph")
        return real(result, *args, **kwargs)

    monkeypatch.setattr(site, "render_dossier_page", broken)
    out = tmp_path / "site"
    report = build_module.build([cases], out, progress=False, pdf=False, keep_going=True)
    assert [f for f, _ in report.failures] == ["b.toml"]
    assert "page: KeyError" in report.failures[0][1]
    assert (out / "cases" / "case-a" / "index.html").exists()
    assert not (out / "cases" / "case-b").exists()
    assert "b.toml" in (out / "index.html").read_text()
    with pytest.raises(KeyError):  # without --keep-going the build stops (the CLI: one line)
        build_module.build([cases], tmp_path / "s2", progress=False, pdf=False)
    assert not (tmp_path / "s2").exists()


@pytest.mark.parametrize("command", ["validate", "build"])
def test_a_fifo_or_a_device_is_refused_without_reading_it(tmp_path, model_dir, command):
    """Issue 31: a FIFO named x.toml hung `validate` and `build`; /dev/zero as a case was read
    until MemoryError. A subprocess with a deadline: a hang fails the test instead of the run."""
    import subprocess
    import sys

    cases = tmp_path / "cases"
    cases.mkdir()
    os.mkfifo(cases / "x.toml")
    (cases / "good.toml").write_text(case_text(model_dir))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
    extra = ["--out", str(tmp_path / "site"), "--no-pdf"] if command == "build" else []
    for target, words in (
        (cases, "x.toml: is a named pipe (FIFO)"),
        ("/dev/zero", "/dev/zero: is a character device"),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "reportgen.cli", command, str(target), *extra],
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert done.returncode == 1, done.stderr
        assert words in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert not (tmp_path / "site").exists()


# --- issue 31 item 4: one meaning per setting ----------------------------------------------


@pytest.fixture
def project(tmp_path, model_dir):
    """project/ with models/tiny (a copy of the tiny model), a link to it and cases/."""
    import shutil

    root = tmp_path / "project"
    (root / "cases").mkdir(parents=True)
    shutil.copytree(model_dir, root / "models" / "tiny")
    (root / "tiny-link").symlink_to(root / "models" / "tiny")
    return root


FOUR_BIT = '\nquantization = "4bit"\ndevice = "cpu"\n'  # refused at once: proof it applied


@pytest.mark.parametrize(
    "key, case_model",
    [
        ("models/tiny", "../models/tiny"),  # the key relative to reportgen.toml
        ("../models/tiny", "../models/tiny"),  # the key as the case writes it
        ("./tiny-link", "../models/tiny"),  # a symbolic link matches its target
        ("models/tiny", "../tiny-link"),
    ],
)
def test_a_models_table_applies_to_the_model_it_names(project, key, case_model):
    from reportgen.project import load_project
    from reportgen.runner import RuntimeOptions, resolve_runtime

    (project / "reportgen.toml").write_text(f'[models."{key}"]{FOUR_BIT}')
    case_file = project / "cases" / "a.toml"
    case_file.write_text(case_text(case_model))
    case = load_case(case_file)
    loaded = load_project(project / "reportgen.toml")
    with pytest.raises(Exception, match=r"4-bit runs only on CUDA"):
        resolve_runtime(case.model, RuntimeOptions(), loaded, case_path=str(case_file))
    result = CliRunner().invoke(
        main, ["build", str(project / "cases"), "--out", str(project / "site"), "--no-pdf"]
    )
    assert result.exit_code == 1 and "4-bit runs only on CUDA" in result.output, result.output
    assert f"models.{key}.quantization" in result.output
    assert "Traceback" not in result.output and not (project / "site").exists()


def test_a_models_key_that_names_nothing_is_one_warning(project, caplog):
    from reportgen.build import warn_unused_model_settings
    from reportgen.project import load_project

    (project / "reportgen.toml").write_text(
        '[models."../model/tiny"]\ndtype = "bfloat16"\n'  # misspelled: models/
        '[models."models/tiny"]\ndtype = "bfloat16"\n'
        '[models."smollm2-135m-instruct"]\ndtype = "bfloat16"\n'
        '[models."org/some-hub-model"]\ndtype = "bfloat16"\n'
        '[models."smolm2"]\ndtype = "bfloat16"\n'
    )
    (project / "cases" / "a.toml").write_text(case_text("../models/tiny"))
    cases = [load_case(project / "cases" / "a.toml")]
    with caplog.at_level("WARNING", logger="reportgen"):
        warn_unused_model_settings(load_project(project / "reportgen.toml"), cases)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2, lines
    assert all(str(project / "reportgen.toml") in line for line in lines)
    assert "[models.'../model/tiny'] applies to no model" in lines[0]
    assert "[models.'smolm2']" in lines[1]


def test_a_case_saved_with_a_relative_model_path_names_the_same_model(project, monkeypatch):
    from reportgen.cases import case_model_spec

    monkeypatch.chdir(project)
    tiny = str((project / "models" / "tiny").resolve())
    # explore: absolute; collect: relative to the folder the case is written to
    assert case_model_spec("./models/tiny") == tiny
    assert case_model_spec("./models/tiny", project / "cases") == "../models/tiny"
    assert case_model_spec("models/tiny", project) == "./models/tiny"
    for kept in ("smollm2-135m-instruct", "org/name", tiny):
        assert case_model_spec(kept, project / "cases") == kept
    for written in (case_model_spec("./models/tiny"), "../models/tiny"):
        (project / "cases" / "a.toml").write_text(case_text(written))
        assert load_case(project / "cases" / "a.toml").model == tiny


def test_the_explorer_saves_a_model_path_the_build_resolves(project, monkeypatch):
    """`explore --model ./models/tiny` wrote model = "./models/tiny", which the build then
    looked for next to the case file."""
    from reportgen.cases import case_toml
    from reportgen.explore_questions import saved_case
    from reportgen.models import load_model
    from reportgen.question import PromptSpec, Question

    monkeypatch.chdir(project)
    loaded = load_model("./models/tiny")
    question = Question(PromptSpec("the capital of france is"), "paris", "lyon")
    text = case_toml(saved_case(loaded, question, model="./models/tiny", case_id="saved"))
    path = project / "cases" / "saved.toml"
    path.write_text(text)
    monkeypatch.chdir(project.parent)  # the build may run from anywhere
    assert load_case(path).model == str((project / "models" / "tiny").resolve())
    assert CliRunner().invoke(main, ["validate", str(path)]).exit_code == 0


def test_id_n_in_a_case_file_is_a_token_id_as_on_the_command_line(tmp_path, model_dir):
    path = tmp_path / "case.toml"
    path.write_text(case_text(model_dir).replace('target = "paris"', 'target = "id:7"'))
    assert load_case(path).question.target == 7
    path.write_text(case_text(model_dir).replace('target = "paris"', 'target = "id:x"'))
    with pytest.raises(CaseError) as info:
        load_case(path)
    assert info.value.field == "target" and "after 'id:' give a token id" in info.value.problem
    path.write_text(case_text(model_dir).replace('target = "paris"', 'target = "id:999999"'))
    assert load_case(path).question.target == 999999
    for argv in (
        ["graph", str(path), "--out", str(tmp_path / "g.json")],
        ["run", str(path), "--out", str(tmp_path / "site"), "--no-pdf"],
    ):
        result = CliRunner().invoke(main, argv)
        assert result.exit_code == 1 and "Traceback" not in result.output, result.output
        line = result.output.strip().splitlines()[-1]
        assert f"{path}: field 'target': target id 999999 is outside the vocabulary" in line


def test_a_missing_compare_model_fails_the_case(tmp_path, model_dir):
    cases = tmp_path / "cases"
    cases.mkdir()
    (cases / "a.toml").write_text(case_text(model_dir) + 'compare = ["./no-such-model"]\n')
    result = CliRunner().invoke(main, ["validate", str(cases)])
    assert result.exit_code == 1
    assert "field 'compare[0]': model path ./no-such-model does not exist" in result.output
    (cases / "a.toml").write_text(case_text(model_dir) + 'compare = ["no-such-model-xyz"]\n')
    (cases / "b.toml").write_text(case_text(model_dir, "case-b"))
    out = tmp_path / "site"
    result = CliRunner().invoke(
        main, ["build", str(cases), "--out", str(out), "--no-pdf", "--keep-going"]
    )
    assert result.exit_code == 1, result.output
    assert "1 failed)" in result.output and "0 failed" not in result.output
    (line,) = [x for x in result.output.splitlines() if x.startswith("FAILED ")]
    assert "a.toml: field 'compare': no-such-model-xyz:" in line and "unknown model" in line


def test_a_folder_tree_deeper_than_the_recursion_limit_is_walked(tmp_path, model_dir):
    """Issue 31: a 1,200-deep folder tree gave RecursionError (os.walk recurses once per level
    on Python 3.11). 400 levels under a recursion limit of 150 frames more than the caller's:
    the same failure, while the tree stays shallow enough for pytest's clean-up."""
    import inspect
    import sys

    from reportgen.cases import find_case_files

    deep = tmp_path / "cases"
    folder = deep.joinpath(*["d"] * 400)
    folder.mkdir(parents=True)
    (folder / "x.toml").write_text(case_text(model_dir))
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(len(inspect.stack()) + 150)
    try:
        found = find_case_files([deep])
    finally:
        sys.setrecursionlimit(limit)
    assert found == [folder / "x.toml"]
    result = CliRunner().invoke(main, ["validate", str(deep)])
    assert result.output.strip().splitlines()[-1] == "1 valid, 0 invalid", result.output[-300:]


def test_validate_checks_the_project_file_the_build_reads(project):
    (project / "cases" / "a.toml").write_text(case_text("../models/tiny"))
    (project / "reportgen.toml").write_text('[models."models/tiny"]\nquantisation = "4bit"\n')
    result = CliRunner().invoke(main, ["validate", str(project / "cases")])
    assert result.exit_code == 1, result.output
    assert "reportgen.toml: field 'models.models/tiny.quantisation': unknown field" in result.output
    (project / "reportgen.toml").write_text('[models."../model/tiny"]\ndtype = "bfloat16"\n')
    result = CliRunner().invoke(main, ["validate", str(project / "cases")])
    assert result.exit_code == 0, result.output
    (warning,) = [x for x in result.output.splitlines() if x.startswith("warning: ")]
    assert "reportgen.toml: [models.'../model/tiny'] applies to no model" in warning


def test_validate_checks_the_tokens_with_the_models_tokenizer(tmp_path, model_dir):
    """What the build refused only after loading the model, `validate` says: it reads the
    tokenizer and config of a model on disk (no weights) and runs the build's own checks."""
    cases = tmp_path / "cases"
    cases.mkdir()
    bad = {
        "zebra.toml": ({'target = "paris"': 'target = "zebra"'}, "target", "not in the vocab"),
        "id.toml": ({'target = "paris"': 'target = "id:999999"'}, "target", "outside the vocab"),
        "same.toml": ({'contrast = "lyon"': 'contrast = "paris lyon"'}, "contrast", "same token"),
        "span.toml": ({"[1, 4]": "[1, 99]"}, "segments.question", "exceeds the 6 input tokens"),
        "long.toml": (
            {'prompt = "the capital of france is"': f'prompt = "{" ".join(["paris"] * 200)}"'},
            "prompt",
            "more than the 128",
        ),
    }
    for i, (name, (changes, _, _)) in enumerate(bad.items()):
        (cases / name).write_text(case_text(model_dir, f"case-{i}", **changes))
    (cases / "good.toml").write_text(case_text(model_dir, "good"))
    result = CliRunner().invoke(main, ["validate", str(cases)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    for name, (_, field, words) in bad.items():
        (line,) = [x for x in result.output.splitlines() if f"{name}:" in x]
        assert line.startswith(f"error: {cases / name}: field '{field}'") and words in line, line
    assert result.output.strip().splitlines()[-1] == f"1 valid, {len(bad)} invalid"
