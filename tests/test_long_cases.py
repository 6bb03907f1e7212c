"""The long cases (cases/long/*.toml, and the SmolLM2 ones of benchmarks/cases/) still reproduce on the real model: the target is
the greedy next token and beats the contrast, and the input is as long as the case says.

Slow: a forward pass of 2k-10k tokens on SmolLM2-135M-Instruct per case (run with -m slow)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from reportgen.cases import load_case
from reportgen.models import load_model
from reportgen.pipeline import prepare_question

pytestmark = [pytest.mark.smollm2, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
LONG_CASES = sorted(
    [
        *(ROOT / "cases" / "long").glob("*.toml"),
        ROOT / "benchmarks/cases/ntpath-basename-recency-8k.toml",
    ]
)


def test_there_are_long_cases():
    assert len(LONG_CASES) >= 1


@pytest.mark.parametrize("path", LONG_CASES, ids=[p.stem for p in LONG_CASES])
def test_long_case_target_is_the_greedy_token(path):
    case = load_case(path)
    assert case.id == path.stem
    loaded = load_model(case.model)
    question = prepare_question(loaded, case.question)
    ids = list(question.inputs.token_ids)
    assert len(ids) >= 1500, f"{len(ids)} tokens is not a long case"
    for name, (start, end) in case.segments.items():
        assert 0 <= start < end <= len(ids), name
    with torch.no_grad():
        logits = loaded.model(
            input_ids=torch.tensor([ids]), use_cache=False, logits_to_keep=1
        ).logits[0, -1]
    assert int(logits.argmax()) == question.objective.target_id
    assert logits[question.objective.target_id] > logits[question.objective.contrast_id]
