"""Costs that follow the model: the long-input flip test's budget is compute (SmolLM2-135M's
32,768 token-forwards), so a larger model gets proportionally fewer token-forwards. Models are
built on the meta device from their published shapes (no weights, no downloads)."""

from __future__ import annotations

import pytest
import torch
import transformers as tf
from tiny_models import tiny_model

from reportgen.compute import FAITHFULNESS_COST_BUDGET, faithfulness_cost_budget

SHAPES = {
    # (config class, fields, expected budget)
    "smollm2-135m": (
        tf.LlamaConfig,
        dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30),
        dict(num_attention_heads=9, num_key_value_heads=3, vocab_size=49152),
        32_768,
    ),
    "qwen2.5-coder-0.5b": (
        tf.Qwen2Config,
        dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24),
        dict(num_attention_heads=14, num_key_value_heads=2, vocab_size=151936),
        9_723,
    ),
    "qwen2.5-coder-1.5b": (
        tf.Qwen2Config,
        dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28),
        dict(num_attention_heads=12, num_key_value_heads=2, vocab_size=151936),
        2_655,
    ),
}


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_the_flip_budget_is_the_same_compute_for_every_model(name):
    config_class, shape, heads, expected = SHAPES[name]
    with torch.device("meta"):
        model = tf.AutoModelForCausalLM.from_config(config_class(**shape, **heads))
    budget = faithfulness_cost_budget(model)
    assert budget == expected
    blocks = sum(p.numel() for p in model.model.layers.parameters())
    # the same FLOPs (2 per block parameter per token) as SmolLM2's 32,768 token-forwards,
    # to within one token-forward
    assert abs(budget * blocks - FAITHFULNESS_COST_BUDGET * 106_202_880) <= blocks


def test_a_smaller_model_keeps_the_token_budget():
    assert faithfulness_cost_budget(tiny_model("qwen2")) == FAITHFULNESS_COST_BUDGET
