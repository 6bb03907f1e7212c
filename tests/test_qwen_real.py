"""Exactness on the real Qwen2.5-Coder-0.5B-Instruct weights (Qwen2: q/k/v biases, grouped
queries 14/2, 24 blocks): conservation of the graph's column sums, closed form = packed
reference, head edges, and the bfloat16 run on the CPU. Short prompts in the default run;
the chat-template prompt and bfloat16 are slow."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reportgen.attribution import attribute
from reportgen.graph.closed import closed_form_graph
from reportgen.graph.closed_heads import closed_form_heads
from reportgen.graph.packed import build_graph, packed_head_edges
from reportgen.inputs import prepare_input, resolve_token
from reportgen.models import load_model
from reportgen.objectives import Objective
from reportgen.question import PromptSpec

pytestmark = pytest.mark.qwen

MODEL = "qwen2.5-coder-0.5b-instruct"
# plain code completions: after "if n < 2:" comes "return False" (not True). The default run
# uses the 8-token one (the packed reference costs a backward per node: n x 25 of them)
SHORT = "if n < 2:\n    return"
CODE = 'def is_prime(n):\n    """Return True if n is prime."""\n    if n < 2:\n        return'


@pytest.fixture(scope="module")
def loaded():
    return load_model(MODEL)


def _question(loaded, prompt: str, chat: bool, prefix: str, target: str, contrast: str):
    tokenizer = loaded.tokenizer
    inputs = prepare_input(tokenizer, PromptSpec(prompt, chat=chat, prefix=prefix))
    t = resolve_token(tokenizer, target, "target")
    c = resolve_token(tokenizer, contrast, "contrast")
    objective = Objective("logit_diff", t.id, "by_ref_token", c.id)
    return list(inputs.token_ids), objective, inputs


def _relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


def test_the_model_is_qwen2_with_projection_biases(loaded):
    config = loaded.model.config
    assert config.model_type == "qwen2"
    assert (config.num_hidden_layers, config.num_attention_heads) == (24, 14)
    assert (config.num_key_value_heads, config.hidden_size) == (2, 896)
    attention = loaded.model.model.layers[0].self_attn
    for name in ("q_proj", "k_proj", "v_proj"):
        assert getattr(attention, name).bias.abs().max() > 0.1  # the general closed-form path
    assert attention.o_proj.bias is None


def _assert_closed_equals_packed(loaded, ids, objective):
    model, tokenizer = loaded.model, loaded.tokenizer
    closed = closed_form_graph(model, tokenizer, ids, objective)
    packed = build_graph(model, tokenizer, ids, objective)
    assert closed.meta["method"] == "closed" and packed.meta["method"] == "packed"
    assert closed.layers == packed.layers and len(closed.layers) == 25
    np.testing.assert_allclose(closed.node_relevance, packed.node_relevance, rtol=1e-6, atol=0)
    worst = max(
        _relative(closed.dense(layer), packed.dense(layer))
        for layer in range(len(closed.layers) - 1)
    )
    assert worst < 1e-4, f"closed vs packed: max relative edge difference {worst:.2e}"
    # conservation: each source node's outgoing edges sum to its relevance, in both methods
    for graph in (closed, packed):
        for layer in range(len(graph.layers) - 1):
            columns = graph.dense(layer).sum(0)
            relevance = graph.node_relevance[layer]
            assert np.abs(columns - relevance).max() < 1e-4 * np.abs(relevance).max()
    assert closed.meta["column_sum_error"] < 1e-4
    return closed


@pytest.mark.parametrize(
    "prompt, tokens", [(SHORT, 8), pytest.param(CODE, 23, marks=pytest.mark.slow)]
)
def test_closed_form_equals_packed_and_conserves_on_qwen(loaded, prompt, tokens):
    ids, objective, _ = _question(loaded, prompt, False, "", " False", " True")
    assert len(ids) == tokens
    closed = _assert_closed_equals_packed(loaded, ids, objective)
    assert closed.meta["explained"] > 0  # the model prefers " False": n < 2 is not prime


@pytest.mark.slow
def test_closed_form_equals_packed_with_the_chat_template(loaded):
    ids, objective, _ = _question(
        loaded,
        "Which planet is closest to the sun?",
        True,
        "The planet closest to the sun is",
        " Mercury",
        " Venus",
    )
    assert len(ids) > 30  # Qwen's default system prompt is part of every chat
    _assert_closed_equals_packed(loaded, ids, objective)


def test_head_edges_equal_packed_per_head_on_qwen(loaded):
    ids, objective, _ = _question(loaded, SHORT, False, "", " False", " True")
    model, tokenizer = loaded.model, loaded.tokenizer
    blocks = [0, model.config.num_hidden_layers - 1]
    closed = closed_form_heads(model, tokenizer, ids, objective, blocks=blocks)
    packed = packed_head_edges(model, tokenizer, ids, objective, blocks=blocks, batch_size=64)
    assert closed.heads.shape == (2, 14, len(ids), len(ids))
    for position in range(len(blocks)):
        worst = _relative(closed.heads[position], packed.heads[position])
        assert worst < 1e-4, f"block {blocks[position]}: {worst:.2e}"
        relevance = closed.source_relevance[position]
        sums = closed.block_edges(position).sum(0)
        assert np.abs(sums - relevance).max() < 1e-4 * np.abs(relevance).max()


@pytest.mark.slow
def test_bfloat16_on_the_cpu_is_close_to_float32(loaded):
    """`--dtype bfloat16` on the CPU: the same prediction, the same explanation up to bf16's
    rounding (docs/method.md, bfloat16 section: cosine 0.99x on these prompts)."""
    ids, objective, inputs = _question(loaded, CODE, False, "", " False", " True")
    reference = attribute(loaded, inputs, objective)
    half = load_model(MODEL, dtype="bfloat16")
    assert half.model.dtype == torch.bfloat16
    result = attribute(half, inputs, objective)
    del half
    a, b = torch.tensor(result.relevance), torch.tensor(reference.relevance)
    assert torch.isfinite(a).all()
    cosine = float(torch.nn.functional.cosine_similarity(a, b, dim=0))
    assert cosine > 0.98, cosine
    assert abs(result.explained - reference.explained) < 0.1 * abs(reference.explained)
