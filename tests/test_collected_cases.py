"""Every case `reportgen collect` wrote under cases/<benchmark>/ still holds on the real model.

Default run: the case path (prompt + prefix re-tokenised as `reportgen attribute` does) gives
exactly the recorded prefix ids, the target is the greedy token and beats the contrast.
Slow run (-m slow): the strict-recovery claim itself, re-checked with plain transformers
``generate`` rather than reportgen's generation code -- prompt + prefix + target continued
greedily fails the benchmark's verifier, prompt + prefix + contrast passes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from reportgen.cases import load_case
from reportgen.collect.benchmarks import Item, get_benchmark
from reportgen.models import load_model
from reportgen.pipeline import Question, prepare_question

pytestmark = pytest.mark.smollm2

CASES_DIR = Path(__file__).resolve().parent.parent / "cases"
# folders `reportgen collect` wrote hold a summary.json; hand-pinned ones (cases/long) do not
COLLECTED = sorted(p for p in CASES_DIR.glob("*/*.toml") if (p.parent / "summary.json").exists())


@pytest.fixture(scope="module")
def smollm2():
    return load_model("smollm2-135m-instruct")


def _prepared(path, loaded):
    case = load_case(path)
    assert case.model == "smollm2-135m-instruct"
    prepared = prepare_question(loaded, Question.from_case(case))
    return case, list(prepared.inputs.token_ids), prepared


def test_every_benchmark_ships_cases():
    by_benchmark = {p.parent.name for p in COLLECTED}
    assert {"arithmetic", "instructions", "humaneval"} <= by_benchmark
    for name in ("arithmetic", "instructions", "humaneval"):
        assert (CASES_DIR / name / "summary.json").exists()


@pytest.mark.parametrize("path", COLLECTED, ids=[f"{p.parent.name}/{p.stem}" for p in COLLECTED])
def test_collected_case_target_is_greedy(path, smollm2):
    case, ids, prepared = _prepared(path, smollm2)
    assert case.source["benchmark"] == path.parent.name
    prefix = list(case.prefix_ids)
    assert ids[len(ids) - len(prefix) :] == prefix  # the pair may sit at the reply's first token
    with torch.no_grad():
        logits = smollm2.model(input_ids=torch.tensor([ids]), use_cache=False).logits[0, -1]
    assert int(logits.argmax()) == prepared.objective.target_id == case.target
    assert logits[case.target] > logits[case.contrast]


def _item(case, benchmark) -> Item:
    """The benchmark item again, from the benchmark's own list (its verifier data included)."""
    for item in benchmark.items():
        if item.id == case.source["item"]:
            return item
    raise AssertionError(f"item {case.source['item']} not in {benchmark.name}")


@pytest.mark.slow
@pytest.mark.parametrize("path", COLLECTED, ids=[f"{p.parent.name}/{p.stem}" for p in COLLECTED])
def test_collected_case_recovers_with_plain_generate(path, smollm2):
    case, ids, _ = _prepared(path, smollm2)
    benchmark = get_benchmark(case.source["benchmark"])
    item = _item(case, benchmark)
    tokenizer, model = smollm2.tokenizer, smollm2.model
    limit = case.source["max_new_tokens"] - case.source["position"] - 1
    verdicts = []
    for token in (case.target, case.contrast):
        start = torch.tensor([ids + [token]])
        with torch.no_grad():
            out = model.generate(
                start,
                attention_mask=torch.ones_like(start),
                max_new_tokens=limit,
                do_sample=False,
                pad_token_id=tokenizer.eos_token_id,
                eos_token_id=sorted(
                    {tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|im_end|>")}
                ),
            )[0, len(ids) :].tolist()
        # the benchmark's stop rule cuts the text where collection stopped
        text = ""
        for end in range(1, len(out) + 1):
            text = tokenizer.decode(list(case.prefix_ids) + out[:end], skip_special_tokens=True)
            if benchmark.stop(text, case.chat):
                break
        verdicts.append(benchmark.verify(item, text, case.chat))
    assert not verdicts[0].passed, f"target path passes: {verdicts[0].message}"
    assert verdicts[1].passed, f"contrast path fails: {verdicts[1].message}"
