"""Objectives, input preparation and the attribution step on a tiny model with a real tokenizer."""

import pytest
import torch
from tiny_models import save_tiny_llama

from reportgen.errors import TokenError
from reportgen.inputs import prepare_input, resolve_token
from reportgen.models import load_model
from reportgen.objectives import Objective
from reportgen.pipeline import explain
from reportgen.question import PromptSpec, Question


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    return load_model(save_tiny_llama(tmp_path_factory.mktemp("tiny")))


def test_objective_values():
    logits = torch.tensor([1.0, 4.0, 2.0, 3.0])
    assert Objective("max_logit", 2).value(logits) == 2.0
    assert Objective("logit_diff", 2, "by_ref_token", 1).value(logits) == -2.0
    assert Objective("logit_diff", 2, "by_topk_avg", k=2).value(logits) == pytest.approx(2.0 - 3.5)
    assert Objective("logit_diff", 2, "demean").value(logits) == pytest.approx(2.0 - 2.5)
    with pytest.raises(ValueError):
        Objective("logit_diff", 2, "by_ref_token")
    with pytest.raises(ValueError):
        Objective("nonsense", 2)


def test_prepare_input_bos_chat_and_prefix(loaded):
    tok = loaded.tokenizer
    plain = prepare_input(tok, PromptSpec("the capital of france is"))
    with_bos = prepare_input(tok, PromptSpec("the capital of france is", bos=True))
    without = prepare_input(tok, PromptSpec("the capital of france is", bos=False))
    assert with_bos.token_ids[0] == tok.bos_token_id
    assert without.token_ids[0] != tok.bos_token_id
    assert len(with_bos.token_ids) == len(without.token_ids) + 1
    assert plain.token_ids in (with_bos.token_ids, without.token_ids)
    chat = prepare_input(tok, PromptSpec("list three primary colors", chat=True, prefix="red :"))
    tokens = tok.convert_ids_to_tokens(list(chat.token_ids))
    assert tokens[0] == "<|user|>" and tokens[-3:] == ["<|assistant|>", "red", ":"]
    assert chat.prompt_length == len(tokens) - 2
    exact = prepare_input(
        tok,
        PromptSpec(
            "list colors",
            chat=True,
            prefix="red :",
            prefix_ids=tuple(tok.encode("red :", add_special_tokens=False)),
        ),
    )
    assert exact.token_ids[-2:] == tuple(tok.encode("red :", add_special_tokens=False))
    with pytest.raises(TokenError, match="prefix_ids decode"):
        prepare_input(tok, PromptSpec("list colors", prefix="blue", prefix_ids=(30,)))
    with pytest.raises(TokenError, match="empty"):
        prepare_input(tok, PromptSpec("   "))


def test_resolve_token(loaded):
    tok = loaded.tokenizer
    assert resolve_token(tok, "paris", "target").id == tok.convert_tokens_to_ids("paris")
    multi = resolve_token(tok, "red blue", "target")
    assert multi.id == tok.convert_tokens_to_ids("red") and multi.first_subtoken_of == "red blue"
    assert resolve_token(tok, 12, "target").id == 12
    with pytest.raises(TokenError, match="outside the vocabulary"):
        resolve_token(tok, 10_000, "target")
    with pytest.raises(TokenError, match="not in the vocabulary"):
        resolve_token(tok, "zebra", "contrast")


@pytest.mark.parametrize("strategy", ["by_ref_token", "by_topk_avg", "demean"])
def test_explain_value_equals_the_models_own_logits(loaded, strategy):
    question = Question(
        PromptSpec("the capital of france is", bos=True),
        "paris",
        "lyon",
        "logit_diff",
        strategy,
        k=5,
    )
    result = explain(loaded, question)
    ids = torch.tensor([result.token_ids])
    with torch.no_grad():
        logits = loaded.model(input_ids=ids).logits[0, -1]
    t, c = result.target.id, loaded.tokenizer.convert_tokens_to_ids("lyon")
    expected = {
        "by_ref_token": logits[t] - logits[c],
        "by_topk_avg": logits[t] - logits.topk(5).values.mean(),
        "demean": logits[t] - logits.mean(),
    }[strategy]
    assert result.explained == pytest.approx(float(expected), abs=1e-5)
    assert result.target.logit == pytest.approx(float(logits[t]), abs=1e-5)
    assert len(result.relevance) == len(result.token_ids) == len(result.tokens)
    assert all(abs(r) < 1e6 for r in result.relevance) and any(r != 0 for r in result.relevance)
    assert result.special[0] is True  # BOS
    assert (result.contrast is not None) == (strategy == "by_ref_token")
    assert result.top_k[0].logit == pytest.approx(float(logits.max()), abs=1e-5)


def test_max_logit_defaults_to_the_greedy_token(loaded):
    result = explain(
        loaded, Question(PromptSpec("list three primary colors"), None, None, "max_logit", None)
    )
    assert result.target.id == result.top_k[0].id
    assert result.explained == pytest.approx(result.top_k[0].logit, abs=1e-6)


def test_contrast_equal_target_explains_nothing(loaded):
    # the math below the case-level refusal: f = l[t] - l[t] is 0 and so is every relevance
    from reportgen.attribution import attribute

    prepared = prepare_input(loaded.tokenizer, PromptSpec("the capital of france is"))
    target = resolve_token(loaded.tokenizer, "paris", "target")
    objective = Objective("logit_diff", target.id, "by_ref_token", target.id)
    result = attribute(loaded, prepared, objective, target=target, contrast=target)
    assert result.explained == 0.0
    assert max(abs(r) for r in result.relevance) == 0.0


def test_contrast_equal_target_is_refused(loaded):
    # issue 14: f = 0 by construction explains nothing; it is an error naming both fields
    with pytest.raises(TokenError, match="target 'paris' and contrast 'paris' are the same token"):
        explain(loaded, Question(PromptSpec("the capital of france is"), "paris", "paris"))
