"""Closed-form edges (docs/method.md section 4) against the batch-packed reference, on tiny models."""

import numpy as np
import pytest
import torch
from tiny_models import ARCHITECTURES, tiny_model

import reportgen.graph.closed as closed_module
import reportgen.graph.closed_layer as closed_layer
import reportgen.graph.packed as packed_module
from reportgen.graph.closed import closed_form, closed_form_graph
from reportgen.graph.closed_heads import closed_form_heads
from reportgen.graph.packed import build_graph, packed_head_edges
from reportgen.graph.session import ClosedFormUnsupportedError, supports_closed_form
from reportgen.graph.stream import EdgeBuffer
from reportgen.objectives import Objective

# 12 tokens: longer than the sliding window (4) of mistral, olmo3 and gemma3's local layers
IDS = [3, 15, 27, 8, 44, 9, 61, 12, 5, 70, 33, 18]
OBJECTIVE = Objective("logit_diff", 5, "by_ref_token", 7)


pytestmark = pytest.mark.usefixtures("one_thread")


class _RecordingBuffer(EdgeBuffer):
    """The edge buffer, also keeping every row in float64 (the graph stores float32)."""

    wants_rows = True

    rows: dict[tuple[int, int], np.ndarray]

    def add(self, source_layer, target_layer, targets, rows):
        store = self.__dict__.setdefault("rows", {})
        for target, row in zip(targets, rows, strict=True):
            store[(int(source_layer), int(target))] = np.array(row, dtype=np.float64)
        super().add(source_layer, target_layer, targets, rows)


def _rows(monkeypatch, build):
    """Run ``build`` and return its float64 rows {(source layer, target position): row}."""
    made = []

    def factory(*args, **kwargs):
        buffer = _RecordingBuffer(*args, **kwargs)
        made.append(buffer)
        return buffer

    monkeypatch.setattr(packed_module, "EdgeBuffer", factory)
    monkeypatch.setattr(closed_module, "EdgeBuffer", factory)
    graph = build()
    monkeypatch.undo()
    (buffer,) = made
    return graph, buffer.__dict__.get("rows", {})


def _assert_same(monkeypatch, model, tokenizer, ids, split, **closed_kwargs):
    packed, packed_rows = _rows(
        monkeypatch, lambda: build_graph(model, tokenizer, ids, OBJECTIVE, split=split)
    )
    closed, closed_rows = _rows(
        monkeypatch,
        lambda: closed_form_graph(model, tokenizer, ids, OBJECTIVE, split=split, **closed_kwargs),
    )
    assert closed.layers == packed.layers
    np.testing.assert_array_equal(closed.node_relevance, packed.node_relevance)
    assert closed.meta["method"] == "closed" and closed.meta["backward_passes"] == 1
    assert closed.meta["exact"] and closed.meta["explained"] == packed.meta["explained"]
    assert set(closed_rows) == set(packed_rows)
    for (source, target), row in packed_rows.items():
        scale = np.abs(packed.node_relevance[source]).sum()
        np.testing.assert_allclose(
            closed_rows[(source, target)],
            row,
            rtol=0,
            atol=1e-10 * scale,
            err_msg=f"layer {packed.layers[source]} target {target}",
        )
    for source in range(len(closed.layers) - 1):
        relevance = closed.node_relevance[source]
        columns = sum(
            (row for (s, _), row in closed_rows.items() if s == source),
            np.zeros(len(ids)),
        )
        np.testing.assert_allclose(columns, relevance, rtol=0, atol=1e-10 * np.abs(relevance).sum())
    assert closed.meta["column_sum_error"] < 1e-10
    np.testing.assert_array_equal(closed.edge_source_layer, packed.edge_source_layer)
    return closed, packed


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_closed_form_equals_packed_backward(arch, tokenizer, monkeypatch):
    model = tiny_model(arch, "sdpa", torch.float64)
    assert supports_closed_form(model)
    for split in (False, True):
        closed, _ = _assert_same(monkeypatch, model, tokenizer, IDS, split, chunk=5)
        if split:
            mid_to_out = closed.dense(1)
            assert np.count_nonzero(mid_to_out - np.diag(np.diag(mid_to_out))) == 0
    assert model.config._attn_implementation == "sdpa"  # restored


def test_sliding_window_limits_lookback(tokenizer):
    model = tiny_model("mistral", "sdpa", torch.float64)
    graph = closed_form_graph(model, tokenizer, IDS, OBJECTIVE)
    for source in range(len(graph.layers) - 1):
        target, origin = np.nonzero(graph.dense(source))
        assert (target - origin).max() == 3  # window 4: j - 3 .. j


def test_positions_beyond_max_position_embeddings(tokenizer, monkeypatch):
    """140 tokens > max_position_embeddings (128) for a rotary model, several row chunks."""
    ids = [int(i) for i in np.random.RandomState(1).randint(5, 97, size=140)]
    model = tiny_model("qwen3", "sdpa", torch.float64)
    _assert_same(monkeypatch, model, tokenizer, ids, False, chunk=64)


def test_eager_model_and_sparse_options_match_packed(tokenizer):
    model = tiny_model("gemma3_text", "eager", torch.float64)
    for kwargs in ({"top_per_target": 3}, {"min_edge_weight": 1e-3}):
        packed = build_graph(model, tokenizer, IDS, OBJECTIVE, **kwargs)
        closed = closed_form_graph(model, tokenizer, IDS, OBJECTIVE, **kwargs)
        assert not closed.meta["exact"]
        assert closed.n_edges == packed.n_edges
        for source in range(len(packed.layers) - 1):
            np.testing.assert_allclose(
                closed.dense(source), packed.dense(source), rtol=1e-5, atol=1e-7
            )
    assert model.config._attn_implementation == "eager"


def test_node_threshold_skips_targets_like_packed(tokenizer):
    model = tiny_model("llama", "sdpa", torch.float64)
    exact = closed_form_graph(model, tokenizer, IDS, OBJECTIVE)
    threshold = float(np.median(np.abs(exact.node_relevance[1:])))
    packed = build_graph(model, tokenizer, IDS, OBJECTIVE, node_threshold=threshold)
    closed = closed_form_graph(model, tokenizer, IDS, OBJECTIVE, node_threshold=threshold)
    assert closed.meta["skipped_targets"] == packed.meta["skipped_targets"] > 0
    assert "approximate" in closed.meta["note"] and not closed.meta["exact"]
    assert set(zip(closed.edge_target_layer, closed.edge_target, strict=True)) == set(
        zip(packed.edge_target_layer, packed.edge_target, strict=True)
    )


def test_trace_is_returned_and_float32_is_close(tokenizer):
    model = tiny_model("llama", "sdpa", torch.float32)
    traced, graph = closed_form(model, tokenizer, IDS, OBJECTIVE, split=True)
    assert traced.names == list(graph.layers)
    packed = build_graph(model, tokenizer, IDS, OBJECTIVE, split=True, traced=traced)
    for source in range(len(graph.layers) - 1):
        scale = np.abs(graph.node_relevance[source]).sum()
        np.testing.assert_allclose(
            graph.dense(source), packed.dense(source), rtol=0, atol=1e-5 * scale
        )


def test_unsupported_model_is_refused(tokenizer):
    class Config:
        model_type = "not-a-transformer"

    model = torch.nn.Linear(2, 2)
    model.config = Config()
    assert not supports_closed_form(model)
    with pytest.raises(ClosedFormUnsupportedError):
        closed_form_graph(model, tokenizer, IDS, OBJECTIVE)


@pytest.mark.parametrize("arch", ["llama", "gpt2", "qwen2"])
def test_projection_biases_take_the_general_path(arch, tokenizer, monkeypatch):
    """Non-zero q/k/v biases: q°, k°, v° differ from q, k, v, so the products with them are
    computed, not reused (random init leaves biases at zero)."""
    model = tiny_model(arch, "sdpa", torch.float64)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("bias") and ("attn" in name or "proj" in name):
                param.add_(0.2 * torch.randn_like(param))
    _assert_same(monkeypatch, model, tokenizer, IDS, False, chunk=5)
    fast = []
    original = closed_layer._plain_rows
    monkeypatch.setattr(closed_layer, "_plain_rows", lambda *a: fast.append(1) or original(*a))
    closed_form_graph(model, tokenizer, IDS, OBJECTIVE, chunk=5)
    assert not fast


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_head_edges_equal_the_per_head_backward(arch, tokenizer):
    """Per head: the closed form against backward passes with the other heads' gradient masked;
    summed over heads (+ the residual diagonal): the block's edges of the graph; column sums:
    the source relevance."""
    model = tiny_model(arch, "sdpa", torch.float64)
    blocks = [0, model.config.num_hidden_layers - 1]
    closed = closed_form_heads(model, tokenizer, IDS, OBJECTIVE, blocks=blocks, chunk=5)
    packed = packed_head_edges(model, tokenizer, IDS, OBJECTIVE, blocks=blocks, batch_size=16)
    assert closed.blocks == packed.blocks == tuple(blocks)
    assert closed.heads.shape == (2, model.config.num_attention_heads, len(IDS), len(IDS))
    assert packed.meta["backward_passes"] > 1 and closed.meta["backward_passes"] == 1
    graph = closed_form_graph(model, tokenizer, IDS, OBJECTIVE)
    for position, block in enumerate(blocks):
        scale = np.abs(packed.source_relevance[position]).sum()
        np.testing.assert_allclose(
            closed.heads[position], packed.heads[position], rtol=0, atol=1e-10 * scale
        )
        np.testing.assert_allclose(
            closed.residual[position], packed.residual[position], rtol=0, atol=1e-10 * scale
        )
        # every head carries something, and no single head is the whole block
        mass = closed.head_mass()[position]
        assert (mass > 0).all() and (mass < mass.sum()).all()
        edges = closed.block_edges(position)
        np.testing.assert_allclose(edges, graph.dense(block), rtol=0, atol=1e-6 * scale)
        np.testing.assert_allclose(
            edges.sum(0), closed.source_relevance[position], rtol=0, atol=1e-10 * scale
        )
    np.testing.assert_array_equal(closed.source_relevance, packed.source_relevance)


def test_head_edges_reject_bad_blocks(tokenizer):
    model = tiny_model("llama", "sdpa", torch.float64)
    with pytest.raises(ValueError, match="expected block indices"):
        closed_form_heads(model, tokenizer, IDS, OBJECTIVE, blocks=[99])


def test_qwen2_with_biases_and_tied_embeddings(tokenizer, monkeypatch):
    """Qwen2 as shipped: q/k/v biases and (at 0.5B/1.5B upstream) the output head tied to the
    input embedding. Tying shares the parameter; edges and head edges stay exact."""
    import transformers as tf
    from tiny_models import _DECODER

    config = tf.Qwen2Config(**_DECODER, tie_word_embeddings=True)
    torch.manual_seed(1)
    model = tf.Qwen2ForCausalLM._from_config(config, attn_implementation="sdpa")
    model = model.to(torch.float64).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith(("q_proj.bias", "k_proj.bias", "v_proj.bias")) or "norm" in name:
                param.add_(0.2 * torch.randn_like(param))
    assert model.lm_head.weight is model.model.embed_tokens.weight
    assert model.model.layers[0].self_attn.q_proj.bias.abs().max() > 0
    _assert_same(monkeypatch, model, tokenizer, IDS, False, chunk=5)
    blocks = [0, 1]
    closed = closed_form_heads(model, tokenizer, IDS, OBJECTIVE, blocks=blocks, chunk=5)
    packed = packed_head_edges(model, tokenizer, IDS, OBJECTIVE, blocks=blocks, batch_size=16)
    scale = np.abs(packed.source_relevance).sum()
    np.testing.assert_allclose(closed.heads, packed.heads, rtol=0, atol=1e-10 * scale)
