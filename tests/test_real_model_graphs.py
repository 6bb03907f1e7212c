"""Closed-form edges on the real SmolLM2 in float32 against the packed backward reference:
whole graphs, and head-level edges of the first and the last block."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from reportgen.cases import load_case
from reportgen.graph.closed import closed_form_graph
from reportgen.graph.closed_heads import closed_form_heads
from reportgen.graph.packed import build_graph, packed_head_edges
from reportgen.models import load_model
from reportgen.pipeline import prepare_question

pytestmark = pytest.mark.smollm2

CASE = Path(__file__).resolve().parent.parent / "cases" / "closest-planet-venus.toml"


@pytest.fixture(scope="module")
def question():
    case = load_case(CASE)
    loaded = load_model(case.model)
    prepared = prepare_question(loaded, case.question)
    return loaded, list(prepared.inputs.token_ids), prepared.objective


def _relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


def test_closed_form_equals_packed_on_smollm2(question):
    loaded, ids, objective = question
    model, tokenizer = loaded.model, loaded.tokenizer
    closed = closed_form_graph(model, tokenizer, ids, objective)
    packed = build_graph(model, tokenizer, ids, objective)
    assert closed.meta["method"] == "closed" and packed.meta["method"] == "packed"
    assert closed.layers == packed.layers and len(closed.layers) == 31
    np.testing.assert_allclose(closed.node_relevance, packed.node_relevance, rtol=1e-6, atol=0)
    worst = max(
        _relative(closed.dense(layer), packed.dense(layer))
        for layer in range(len(closed.layers) - 1)
    )
    assert worst < 1e-4, f"closed vs packed: max relative edge difference {worst:.2e}"
    assert closed.meta["column_sum_error"] < 1e-4


def test_head_edges_equal_packed_per_head_on_smollm2(question):
    loaded, ids, objective = question
    model, tokenizer = loaded.model, loaded.tokenizer
    blocks = [0, model.config.num_hidden_layers - 1]
    closed = closed_form_heads(model, tokenizer, ids, objective, blocks=blocks)
    packed = packed_head_edges(model, tokenizer, ids, objective, blocks=blocks, batch_size=64)
    assert closed.heads.shape == (2, 9, len(ids), len(ids))
    for position in range(len(blocks)):
        # per head, relative to the block's largest head edge
        worst = _relative(closed.heads[position], packed.heads[position])
        assert worst < 1e-4, f"block {blocks[position]}: {worst:.2e}"
        relevance = closed.source_relevance[position]
        sums = closed.block_edges(position).sum(0)
        assert np.abs(sums - relevance).max() < 1e-4 * np.abs(relevance).max()
