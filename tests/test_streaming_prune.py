"""Pruning while the closed form streams its edges (issue #9) equals pruning the full graph."""

import numpy as np
import pytest
import torch
from tiny_models import tiny_model

import reportgen.graph.closed as closed_module
import reportgen.graph.stream as stream
from lxt import decoder_blocks
from reportgen.graph.closed import closed_form, closed_form_graph
from reportgen.graph.prune import prune_cumulative_mass, prune_threshold
from reportgen.graph.types import AttributionGraph
from reportgen.objectives import Objective

IDS = [int(i) for i in np.random.RandomState(3).randint(5, 97, size=40)]
OBJECTIVE = Objective("logit_diff", 5, "by_ref_token", 7)


pytestmark = pytest.mark.usefixtures("one_thread")


def _edges(graph: AttributionGraph) -> dict[tuple[int, int, int, int], float]:
    return {
        (int(sl), int(tl), int(s), int(t)): float(w)
        for sl, tl, s, t, w in zip(
            graph.edge_source_layer,
            graph.edge_target_layer,
            graph.edge_source,
            graph.edge_target,
            graph.edge_weight,
            strict=True,
        )
    }


def _assert_same_edges(streamed: AttributionGraph, reference: AttributionGraph) -> None:
    assert streamed.n_edges == reference.n_edges
    assert _edges(streamed) == _edges(reference)
    # the same order too: transitions in layer order, (target, source) within one
    for name in ("edge_source_layer", "edge_target_layer", "edge_source", "edge_target"):
        np.testing.assert_array_equal(getattr(streamed, name), getattr(reference, name))
    np.testing.assert_array_equal(streamed.edge_weight, reference.edge_weight)
    np.testing.assert_array_equal(streamed.node_relevance, reference.node_relevance)


@pytest.mark.parametrize("arch", ["llama", "mistral", "gemma3_text", "gpt2"])
@pytest.mark.parametrize("split", [False, True])
def test_streamed_cumulative_mass_equals_pruning_the_full_graph(arch, split, tokenizer):
    model = tiny_model(arch, "sdpa", torch.float64)
    full = closed_form_graph(model, tokenizer, IDS, OBJECTIVE, split=split, chunk=7)
    for p in (0.3, 0.85, 0.9, 1.0):
        streamed = closed_form_graph(
            model, tokenizer, IDS, OBJECTIVE, split=split, chunk=7, cumulative_mass=p
        )
        reference = prune_cumulative_mass(full, p)
        assert 0 < reference.n_edges < full.n_edges or p == 1.0
        _assert_same_edges(streamed, reference)
        assert streamed.meta["pruned_cumulative_mass"] == p and not streamed.meta["exact"]
        assert streamed.meta["column_sum_error"] < 1e-10  # checked on every edge, kept or not


@pytest.mark.parametrize("margin", [-(10**6), 0, 10**6])
def test_second_pass_and_one_pass_agree(margin, tokenizer, monkeypatch):
    """A chunk whose running floor ended above the final cutoff bin is recomputed: a hugely
    negative margin recomputes every chunk, a huge one none (all candidates kept in pass one)."""
    model = tiny_model("qwen3", "sdpa", torch.float64)
    full = closed_form_graph(model, tokenizer, IDS, OBJECTIVE, chunk=5)
    monkeypatch.setattr(stream, "_MARGIN_BINS", margin)
    streamed = closed_form_graph(model, tokenizer, IDS, OBJECTIVE, chunk=5, cumulative_mass=0.85)
    _assert_same_edges(streamed, prune_cumulative_mass(full, 0.85))
    # the last block's outputs only matter at the last position: 8 + 1 chunks with targets
    expected = {-(10**6): 9, 10**6: 0}
    if margin in expected:
        assert streamed.meta["recomputed_chunks"] == expected[margin]


def test_cumulative_mass_after_threshold_and_node_threshold(tokenizer):
    model = tiny_model("llama", "sdpa", torch.float64)
    full = closed_form_graph(model, tokenizer, IDS, OBJECTIVE)
    tau = float(np.quantile(np.abs(full.edge_weight), 0.3))
    nodes = float(np.median(np.abs(full.node_relevance[1:])))
    kwargs = {"min_edge_weight": tau, "node_threshold": nodes, "chunk": 9}
    thresholded = closed_form_graph(model, tokenizer, IDS, OBJECTIVE, **kwargs)
    streamed = closed_form_graph(model, tokenizer, IDS, OBJECTIVE, cumulative_mass=0.7, **kwargs)
    _assert_same_edges(streamed, prune_cumulative_mass(thresholded, 0.7))


def test_streamed_threshold_equals_prune_threshold(tokenizer):
    model = tiny_model("olmo2", "sdpa", torch.float64)
    full = closed_form_graph(model, tokenizer, IDS, OBJECTIVE, split=True, chunk=6)
    for quantile in (0.5, 0.9):
        tau = float(np.quantile(np.abs(full.edge_weight), quantile))
        streamed = closed_form_graph(
            model, tokenizer, IDS, OBJECTIVE, split=True, chunk=6, min_edge_weight=tau
        )
        _assert_same_edges(streamed, prune_threshold(full, tau))


def test_mass_cut_with_ties_matches_prune_cumulative_mass():
    """Many equal magnitudes at the cutoff (all kept), chunked streaming, several p."""
    rng = np.random.RandomState(0)
    weights = rng.choice([0.5, -0.5, 0.25, 0.125, -0.125, 1e-3, 3.0, 0.0], size=500)
    weights = weights.astype(np.float32)
    sources = np.arange(weights.size, dtype=np.int32) % 50
    targets = np.arange(weights.size, dtype=np.int32) // 50
    graph = AttributionGraph(
        tokens=tuple("x" * 50),
        layers=("a", "b"),
        node_relevance=np.zeros((2, 50)),
        edge_source_layer=np.zeros(weights.size, np.int16),
        edge_target_layer=np.ones(weights.size, np.int16),
        edge_source=sources,
        edge_target=targets,
        edge_weight=weights,
    )
    for p in (0.0, 0.1, 0.5, 0.85, 0.95, 1.0):
        cut = stream.MassCut(p)
        parts = []
        for start in range(0, weights.size, 64):
            part = slice(start, start + 64)
            cut.observe(weights[part])
            parts.append((sources[part], targets[part], weights[part]))
        kept = stream.select(parts, cut.bracket())
        reference = prune_cumulative_mass(graph, p)
        got = set(zip(kept[0].tolist(), kept[1].tolist(), strict=True))
        assert got == set(
            zip(reference.edge_source.tolist(), reference.edge_target.tolist(), strict=True)
        ), p
    empty = stream.MassCut(0.85)
    empty.observe(np.zeros(4, np.float32))
    assert empty.bracket() is None
    assert stream.select([], None)[0].size == 0


@pytest.mark.parametrize("arch", ["llama", "gemma3_text", "gpt2"])
def test_checkpointed_trace_gives_the_same_graph(arch, tokenizer):
    model = tiny_model(arch, "sdpa", torch.float64)
    for split in (False, True):
        plain_trace, plain = closed_form(
            model, tokenizer, IDS, OBJECTIVE, split=split, chunk=8, checkpoint=False
        )
        saved_trace, saved = closed_form(
            model, tokenizer, IDS, OBJECTIVE, split=split, chunk=8, checkpoint=True
        )
        assert saved.meta["checkpointed"] and not plain.meta["checkpointed"]
        _assert_same_edges(saved, plain)
        assert saved_trace.explained == plain_trace.explained
        assert len(saved_trace.neuron_relevance) == len(plain_trace.neuron_relevance)
        for a, b in zip(saved_trace.neuron_relevance, plain_trace.neuron_relevance, strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
        for a, b in zip(saved_trace.grads, plain_trace.grads, strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
    # the blocks are restored: no checkpoint wrapper left behind
    blocks = decoder_blocks(model)
    assert all("forward" not in block.__dict__ for block in blocks)


def _neuron_reference(model, ids, objective):
    """x * g of every MLP's down-projection input under the rules, read the plain way: the
    activations kept with ``retain_grad`` and multiplied after the backward."""
    import lxt

    architecture = lxt.architecture_of(model)
    kept = []

    def keep(module, args):
        args[0].retain_grad()
        kept.append(args[0])

    handles = [
        block.get_submodule(architecture.neurons).register_forward_pre_hook(keep)
        for block in decoder_blocks(model)
    ]
    try:
        with lxt.lrp_rules(model), torch.enable_grad():
            x = torch.tensor([ids])
            embeddings = model.get_input_embeddings()(x).detach().requires_grad_(True)
            logits = model(inputs_embeds=embeddings, use_cache=False).logits[0, -1]
            objective.value(logits).backward()
    finally:
        for handle in handles:
            handle.remove()
    return [(a.detach() * a.grad)[0] for a in kept]


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gpt2"])
def test_neuron_relevance_is_each_activation_times_its_gradient(arch, tokenizer):
    """The trace multiplies each MLP activation by its gradient when the gradient arrives (and
    drops the activation then); with and without checkpointed blocks that is the product read
    the plain way, block by block."""
    model = tiny_model(arch, "sdpa", torch.float64)
    reference = _neuron_reference(model, IDS, OBJECTIVE)
    assert len(reference) == model.config.num_hidden_layers
    for checkpoint in (False, True):
        traced, _ = closed_form(model, tokenizer, IDS, OBJECTIVE, chunk=8, checkpoint=checkpoint)
        assert len(traced.neuron_relevance) == len(reference)
        for ours, theirs in zip(traced.neuron_relevance, reference, strict=True):
            assert ours.shape == (len(IDS), theirs.shape[-1])
            torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-14)
        assert any(float(r.abs().sum()) > 0 for r in traced.neuron_relevance)


def test_top_per_target_with_cumulative_mass_is_refused(tokenizer):
    model = tiny_model("llama", "sdpa", torch.float64)
    with pytest.raises(ValueError, match="cannot be combined"):
        closed_form_graph(model, tokenizer, IDS, OBJECTIVE, cumulative_mass=0.8, top_per_target=3)


class _RowBuffer(stream.EdgeBuffer):
    """An edge buffer that asks for rows: the closed form then hands it full float64 rows."""

    wants_rows = True

    def add(self, source_layer, target_layer, targets, rows):
        super().add(source_layer, target_layer, targets, rows)


@pytest.mark.parametrize("arch", ["qwen2", "llama", "mistral", "phi3"])
def test_vectorised_edges_equal_row_by_row_buffer(arch, tokenizer, monkeypatch):
    """The torch-side edge selection gives the arrays ``_EdgeBuffer.add`` gives row by row."""
    model = tiny_model(arch, "sdpa", torch.float64)
    for kwargs in ({}, {"min_edge_weight": 1e-4}, {"split": True}):
        fast = closed_form_graph(model, tokenizer, IDS, OBJECTIVE, chunk=7, **kwargs)
        monkeypatch.setattr(closed_module, "EdgeBuffer", _RowBuffer)
        rows = closed_form_graph(model, tokenizer, IDS, OBJECTIVE, chunk=7, **kwargs)
        monkeypatch.undo()
        _assert_same_edges(fast, rows)
