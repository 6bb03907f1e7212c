"""The same case on another model: numbers from that model, segments carried by characters."""

import pytest
import torch
from tiny_models import save_tiny, save_tiny_llama

from reportgen.compare import carry_segments, compare_models
from reportgen.errors import ModelLoadError
from reportgen.models import load_model
from reportgen.pipeline import explain
from reportgen.question import PromptSpec, Question
from reportgen.results import Attribution, TokenScore


def fake_attribution(texts):
    score = TokenScore("x", "x", 0, 0.0, 0.0)
    n = len(texts)
    return Attribution(
        "m",
        "logit_diff",
        "by_ref_token",
        None,
        "",
        list(texts),
        list(texts),
        list(range(n)),
        [False] * n,
        [0.0] * n,
        1.0,
        score,
        score,
        [],
        n,
    )


def test_segments_follow_characters_across_tokenizers():
    base = fake_attribution(["<s>", "List", " three", " primary", " colors", "."])
    other = fake_attribution(["<bos>", "Li", "st", " three", " prim", "ary", " col", "ors", "."])
    carried = carry_segments({"question": [1, 5], "colors": [4, 5]}, base, other)
    assert carried == {"question": (1, 8), "colors": (6, 8)}


def test_compare_models_runs_each_model_and_reports_failures(tmp_path):
    base_dir = save_tiny_llama(tmp_path / "base")
    other_dir = save_tiny("llama", tmp_path / "checkpoint-2", seed=3)  # another checkpoint
    question = Question(PromptSpec("the capital of france is", bos=True), "paris", "lyon")
    base = explain(load_model(base_dir), question)
    # issue 31: a compared model that cannot be loaded fails the case, it is not left out
    with pytest.raises(ModelLoadError, match="missing: model path .* does not exist"):
        compare_models(
            question, base, {"question": [1, 4]}, (other_dir, str(tmp_path / "missing")), load_model
        )
    rows, errors = compare_models(question, base, {"question": [1, 4]}, (other_dir,), load_model)
    assert len(rows) == 1 and not errors
    row = rows[0]
    other = load_model(other_dir)
    ids = torch.tensor([base.token_ids])
    with torch.no_grad():
        logits = other.model(input_ids=ids).logits[0, -1]
    assert row["explained"] == pytest.approx(
        float(logits[base.target.id] - logits[base.contrast.id]), abs=1e-5
    )
    assert row["segments"]["question"] == pytest.approx(sum(row["relevance"][1:4]))
    assert row["explained"] != pytest.approx(base.explained)
