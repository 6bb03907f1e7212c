"""Every case `reportgen collect` wrote under cases/<benchmark>/ (SmolLM2) and
cases/<family>/<benchmark>/ (Qwen2.5-Coder) still holds on its own real model, under issue 19's
rules: a clean case, not a lucky number.

Default run: each benchmark folder has its summary.json, whose funnel and case list match the
shipped files (zero cases is an honest outcome, still checked); the case path (prompt + prefix
re-tokenised as `reportgen attribute` does) gives exactly the recorded prefix ids, the target is
the greedy token and beats the contrast by at least the clean-case gap (1.0); the recorded paths
carry their verdicts, and the benchmark's strict rules accept them again (the target path
finishes and fails for the benchmark's reason, the contrast path finishes and recovers).
Slow run (-m slow): the same claim re-checked with plain transformers ``generate`` rather than
reportgen's generation code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from reportgen.cases import load_case
from reportgen.collect.benchmarks import Item
from reportgen.collect.registry import get_benchmark
from reportgen.models import load_model
from reportgen.pipeline import prepare_question

CASES_DIR = Path(__file__).resolve().parent.parent / "cases"
BENCHMARKS = ("arithmetic", "instructions", "humaneval")
#: every folder collect wrote: cases/<benchmark>/ and cases/<family>/<benchmark>/
FOLDERS = sorted(
    p.parent
    for p in CASES_DIR.rglob("summary.json")
    if p.parent.name in BENCHMARKS and p.parent.parent in (CASES_DIR, *CASES_DIR.iterdir())
)
COLLECTED = sorted(p for folder in FOLDERS for p in folder.glob("*.toml"))
MIN_GAP = 1.0  # the original study's clean-case threshold
MODELS = {
    "smollm2-135m-instruct": pytest.mark.smollm2,
    "qwen2.5-coder-0.5b-instruct": pytest.mark.qwen,
}


def _label(path: Path) -> str:
    return str(path.relative_to(CASES_DIR).with_suffix(""))


def _marked(path: Path) -> object:
    """The case as a test parameter, marked with its model's marker (smollm2, qwen)."""
    model = load_case(path).model
    return pytest.param(path, id=_label(path), marks=MODELS.get(model, pytest.mark.smollm2))


CASES = [_marked(p) for p in COLLECTED]


@pytest.fixture(scope="module")
def models():
    """The embedded models the cases name, each loaded once."""
    loaded: dict[str, object] = {}

    def get(name: str):
        if name not in loaded:
            loaded.clear()  # one real model in memory at a time
            loaded[name] = load_model(name)
        return loaded[name]

    return get


def _prepared(path, models):
    case = load_case(path)
    assert case.model in MODELS
    loaded = models(case.model)
    prepared = prepare_question(loaded, case.question)
    return case, list(prepared.inputs.token_ids), prepared, loaded


def test_every_benchmark_has_its_folder():
    assert {f.name for f in FOLDERS} == set(BENCHMARKS)


@pytest.mark.parametrize("folder", FOLDERS, ids=_label)
def test_every_benchmark_ships_its_summary_and_funnel(folder):
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    assert summary["benchmark"] == folder.name
    assert summary["settings"]["min_gap"] >= MIN_GAP
    shipped = sorted(p.stem for p in folder.glob("*.toml"))
    assert sorted(c for run in summary["runs"] for c in run["cases"]) == shipped
    funnel = summary["funnel"]
    assert funnel["pinned"] == summary["pinned"] == len(shipped)
    assert (
        funnel["items"]
        == summary["items"]
        == funnel["generated"]
        + sum(1 for u in summary["unpinned"] if u["reason"].startswith("not generated"))
    )
    assert funnel["passed"] + funnel["failed"] == funnel["generated"]
    not_clean = sum(funnel["not_clean_failure"].values())
    assert funnel["searched"] + not_clean + funnel["not_searched"] == funnel["failed"]
    assert funnel["pinned"] <= funnel["searched"]
    assert len(summary["unpinned"]) == summary["items"] - summary["passed"] - summary["pinned"]


def _item(case, benchmark) -> Item:
    """The benchmark item again, from the benchmark's own list (its verifier data included)."""
    for item in benchmark.items():
        if item.id == case.source["item"]:
            return item
    raise AssertionError(f"item {case.source['item']} not in {benchmark.name}")


def _strict(benchmark, item, case, target_text, target_finished, contrast_text, contrast_finished):
    swap = len(case.question.prompt.prefix)
    fails = benchmark.check_failure(
        item, target_text, case.question.prompt.chat, finished=target_finished
    )
    recovers = benchmark.check_recovery(
        item, contrast_text, case.question.prompt.chat, finished=contrast_finished, swap=swap
    )
    assert fails.passed, f"target path is no clean failure: {fails.message}"
    assert recovers.passed, f"contrast path does not recover: {recovers.message}"


@pytest.mark.parametrize("path", CASES)
def test_collected_case_is_clean_on_the_case_path(path, models):
    case, ids, prepared, loaded = _prepared(path, models)
    source = case.source
    assert source["benchmark"] == path.parent.name
    prefix = list(case.question.prompt.prefix_ids)
    assert ids[len(ids) - len(prefix) :] == prefix  # the pair may sit at the reply's first token
    with torch.no_grad():
        logits = loaded.model(input_ids=torch.tensor([ids]), use_cache=False).logits[0, -1]
    assert int(logits.argmax()) == prepared.objective.target_id == case.question.target
    gap = float(logits[case.question.target] - logits[case.question.contrast])
    assert gap >= MIN_GAP and source["min_gap"] >= MIN_GAP
    assert abs(gap - source["logit_gap"]) < 1e-3
    # the verdicts are recorded with their reasons, and the strict rules accept them again
    assert source["verdict_target"].startswith("fails: ")
    assert source["verdict_contrast"].startswith("recovers: ")
    assert source["recovering"] in case.description and source["failing"] in case.description
    benchmark = get_benchmark(source["benchmark"])
    _strict(
        benchmark,
        _item(case, benchmark),
        case,
        source["failing_output"],
        source["target_stopped"] != "length",
        source["recovering_output"],
        source["contrast_stopped"] != "length",
    )


def _plain_continuation(loaded, ids, token, limit, case, benchmark) -> tuple[str, bool]:
    """prompt + prefix + token continued by plain ``generate``; (text, finished): finished by
    an end-of-sequence token or the benchmark's stop rule, not by the token budget."""
    tokenizer, model = loaded.tokenizer, loaded.model
    eos = sorted({tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|im_end|>")})
    start = torch.tensor([ids + [token]])
    with torch.no_grad():
        out = model.generate(
            start,
            attention_mask=torch.ones_like(start),
            max_new_tokens=limit,
            do_sample=False,
            pad_token_id=tokenizer.eos_token_id,
            eos_token_id=eos,
        )[0, len(ids) :].tolist()
    # the benchmark's stop rule cuts the text where collection stopped
    for end in range(1, len(out) + 1):
        text = tokenizer.decode(
            list(case.question.prompt.prefix_ids) + out[:end], skip_special_tokens=True
        )
        if benchmark.stop(text, case.question.prompt.chat):
            return text, True
    text = tokenizer.decode(list(case.question.prompt.prefix_ids) + out, skip_special_tokens=True)
    return text, bool(out) and out[-1] in eos


@pytest.mark.slow
@pytest.mark.parametrize("path", CASES)
def test_collected_case_recovers_with_plain_generate(path, models):
    case, ids, _, loaded = _prepared(path, models)
    benchmark = get_benchmark(case.source["benchmark"])
    item = _item(case, benchmark)
    with torch.no_grad():
        logits = loaded.model(input_ids=torch.tensor([ids]), use_cache=False).logits[0, -1]
    assert int(logits.argmax()) == case.question.target
    assert float(logits[case.question.target] - logits[case.question.contrast]) >= MIN_GAP
    limit = case.source["max_new_tokens"] - case.source["position"] - 1
    target = _plain_continuation(loaded, ids, case.question.target, limit, case, benchmark)
    contrast = _plain_continuation(loaded, ids, case.question.contrast, limit, case, benchmark)
    _strict(benchmark, item, case, *target, *contrast)
