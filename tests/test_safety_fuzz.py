"""Issue 14: a site built from randomly damaged copies of shipped case files. No traceback,
every valid case built, every invalid one named with its field -- one build, --keep-going.

The copies keep each shipped case's own fields (title, description, tags, notes, source, graph)
but ask their question of a tiny random model built from a config (its vocabulary has only a
few words), so the whole build takes seconds."""

import json
import math
import random
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner
from tiny_models import save_tiny_llama

from reportgen.cli import main

SHIPPED = Path(__file__).resolve().parent.parent / "cases"
SOURCES = [
    "primary-colors-yellow.toml",
    "closest-planet-venus.toml",
    "code-subtract-calls-add.toml",
    "json-capital-france-prose.toml",
]
N_DAMAGED, N_VALID, SEED = 20, 3, 14


def dump_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return (
            "nan"
            if math.isnan(value)
            else ("inf" if value > 0 else "-inf")
            if math.isinf(value)
            else repr(value)
        )
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(dump_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return (
            "{ " + ", ".join(f"{json.dumps(k)} = {dump_value(v)}" for k, v in value.items()) + " }"
        )
    raise TypeError(value)


def dump_toml(data: dict) -> str:
    return "".join(f"{key} = {dump_value(value)}\n" for key, value in data.items())


def tiny_copy(source: str, model: str, case_id: str) -> dict:
    """A shipped case asking the tiny model "the capital of france is" -> paris vs lyon."""
    data = tomllib.loads((SHIPPED / source).read_text(encoding="utf-8"))
    for name in ("prefix", "prefix_ids", "compare", "segments", "relevant", "chat"):
        data.pop(name, None)
    data.update(
        id=case_id,
        model=model,
        prompt="the capital of france is",
        target="paris",
        contrast="lyon",
        bos=True,
        segments={"question": [1, 4]},
        relevant=[[3, 5]],
    )
    return data


def _set(name, value):
    def damage(data):
        data[name] = value

    return damage


def _graph(name, value):
    def damage(data):
        data.setdefault("graph", {})[name] = value

    return damage


def _drop(name):
    return lambda data: data.pop(name)


# (damage to the parsed case, the field its error must name)
DAMAGE = [
    (lambda d: d.__setitem__("id", d["id"] + "\n"), "id"),
    (lambda d: d.__setitem__("id", d["id"] + "-" + "x" * 300), "id"),
    (lambda d: d.__setitem__("id", d["id"].upper()), "id"),
    (lambda d: d.__setitem__("id", "../" + d["id"]), "id"),
    (_drop("prompt"), "prompt"),
    (_drop("target"), "target"),
    (_drop("model"), "model"),
    (_set("prompt", "   "), "prompt"),
    (_set("target", 3.5), "target"),
    (_set("contrast", "paris"), "contrast"),
    (_set("chat", "yes"), "chat"),
    (_set("k", 0), "k"),
    (_set("tagz", 1), "tagz"),
    (_set("segments", {"question": [4, 1]}), "segments.question"),
    (_set("segments", {"question": [1, 99]}), "segments.question"),  # found at run time
    (_set("relevant", [[2, 99]]), "relevant[0]"),  # found at run time
    (_set("prefix_ids", [1, -2]), "prefix_ids"),
    (_graph("p", float("nan")), "graph.p"),
    (_graph("p", float("inf")), "graph.p"),
    (_graph("p", 0.0), "graph.p"),
    (_graph("threshold", float("-inf")), "graph.threshold"),
    (_graph("node_threshold", float("nan")), "graph.node_threshold"),
    (_graph("prune", "magic"), "graph.prune"),
    (_graph("layers", [0, -1]), "graph.layers"),
]
TEXT_DAMAGE = [  # damage to the file's bytes: the error names the file
    (lambda b: b"\xff\xfe" + b, "not UTF-8"),
    (lambda b: b + b"= = =\n", "invalid TOML"),
    # cut short: a newline inside an open string or a line without a key, never valid TOML
    (lambda b: b[: len(b) // 3] + b"\n= cut\n", "invalid TOML"),
]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_llama(tmp_path_factory.mktemp("tiny-fuzz"))


def test_a_site_from_damaged_copies_of_shipped_cases(model_dir, tmp_path):
    rng = random.Random(SEED)
    cases = tmp_path / "cases"
    cases.mkdir()
    valid, invalid = [], {}  # ids; file name -> words its failure line must contain
    for i in range(N_VALID):
        case_id = f"valid-{i}"
        data = tiny_copy(SOURCES[i % len(SOURCES)], model_dir, case_id)
        (cases / f"{case_id}.toml").write_text(dump_toml(data), encoding="utf-8")
        valid.append(case_id)
    kinds = rng.sample(range(len(DAMAGE) + len(TEXT_DAMAGE)), N_DAMAGED)
    for n, kind in enumerate(kinds):
        data = tiny_copy(rng.choice(SOURCES), model_dir, f"damaged-{n}")
        name = f"damaged-{n}.toml"
        if kind < len(DAMAGE):
            damage, field = DAMAGE[kind]
            damage(data)
            (cases / name).write_text(dump_toml(data), encoding="utf-8")
            invalid[name] = f"field '{field}'"
        else:
            damage, words = TEXT_DAMAGE[kind - len(DAMAGE)]
            (cases / name).write_bytes(damage(dump_toml(data).encode()))
            invalid[name] = words
    out = tmp_path / "site"
    result = CliRunner().invoke(
        main, ["build", str(cases), "--out", str(out), "--keep-going", "--no-pdf"]
    )
    assert "Traceback" not in result.output and "internal error" not in result.output
    assert result.exit_code == 1
    failed = [line for line in result.output.splitlines() if line.startswith("FAILED ")]
    assert len(failed) == len(invalid), "\n".join(failed)
    for name, words in invalid.items():
        (line,) = [x for x in failed if f"/{name}: " in x]
        assert words in line, line
    for case_id in valid:
        assert (out / "cases" / case_id / "index.html").is_file(), case_id
        assert json.loads((out / "cases" / case_id / "data.json").read_text())["case_id"] == case_id
    built = sorted(p.name for p in (out / "cases").iterdir())
    assert built == sorted(valid)
    index = (out / "index.html").read_text(encoding="utf-8")
    assert all(name in index for name in invalid)
