"""Every shipped case (cases/*.toml) still reproduces on the real model: the target is the
model's greedy token, it beats the contrast, and the attribution is well formed.

Slow: loads SmolLM2-135M-Instruct and runs one AttnLRP pass per case (run with -m slow)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from reportgen.cases import load_case
from reportgen.models import load_model
from reportgen.pipeline import attribute_prepared, prepare_question

pytestmark = pytest.mark.smollm2

CASES_DIR = Path(__file__).resolve().parent.parent / "cases"
CASE_FILES = sorted(CASES_DIR.glob("*.toml"))


@pytest.fixture(scope="module")
def models():
    """Each model named by a case, loaded once for the whole module."""
    loaded = {}

    def get(name):
        if name not in loaded:
            loaded[name] = load_model(name)
        return loaded[name]

    return get


def test_there_are_shipped_cases():
    assert len(CASE_FILES) >= 10, (
        f"expected at least 10 cases in {CASES_DIR}, found {len(CASE_FILES)}"
    )


@pytest.mark.parametrize("path", CASE_FILES, ids=[p.stem for p in CASE_FILES])
def test_shipped_case_reproduces(path, models):
    case = load_case(path)
    assert case.id == path.stem, "the id must equal the file name"
    loaded = models(case.model)
    tokenizer = loaded.tokenizer

    # the target and contrast are single tokens, as written
    for role, value in (("target", case.question.target), ("contrast", case.question.contrast)):
        if isinstance(value, str):
            ids = tokenizer.encode(value, add_special_tokens=False)
            assert len(ids) == 1, f"{role} {value!r} is {len(ids)} tokens: {ids}"

    prepared = prepare_question(loaded, case.question)
    n_tokens = len(prepared.inputs.token_ids)
    for name, (start, end) in case.segments.items():
        assert 0 <= start < end <= n_tokens, (
            f"segment {name} [{start}, {end}) outside {n_tokens} tokens"
        )
    for start, end in case.relevant:
        assert 0 <= start < end <= n_tokens, (
            f"relevant span [{start}, {end}) outside {n_tokens} tokens"
        )

    result = attribute_prepared(loaded, prepared)
    assert result.top_k[0].id == result.target.id, (
        f"target {case.question.target!r} is not the greedy token; the model now prefers "
        f"{result.top_k[0].token!r} ({result.top_k[0].logit:.2f} vs {result.target.logit:.2f})"
    )
    assert result.contrast is not None
    assert result.target.logit > result.contrast.logit
    assert result.explained == pytest.approx(result.target.logit - result.contrast.logit, abs=1e-3)
    assert len(result.relevance) == n_tokens
    assert all(math.isfinite(r) for r in result.relevance)
