"""Attribution graphs on tiny models: exactness, batch packing, split nodes."""

import numpy as np
import pytest
import torch
from tiny_models import ARCHITECTURES, tiny_model

from reportgen.attribution import input_gradient
from reportgen.graph.packed import build_graph, packing_size
from reportgen.objectives import Objective

IDS = [3, 15, 27, 8, 44, 9, 61, 12, 5]
OBJECTIVE = Objective("logit_diff", 5, "by_ref_token", 7)


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("split", [False, True])
def test_column_sums_equal_source_relevance_and_packing_is_exact(arch, split, tokenizer):
    model = tiny_model(arch, "sdpa", torch.float64)
    packed = build_graph(model, tokenizer, IDS, OBJECTIVE, split=split)
    one_by_one = build_graph(model, tokenizer, IDS, OBJECTIVE, split=split, batch_size=1)
    assert packed.meta["backward_passes"] < one_by_one.meta["backward_passes"]
    for source in range(len(packed.layers) - 1):
        columns = packed.dense(source).sum(0)
        relevance = packed.node_relevance[source]
        np.testing.assert_allclose(
            columns, relevance, rtol=1e-3, atol=1e-6 * np.abs(relevance).sum()
        )
        np.testing.assert_allclose(
            packed.dense(source), one_by_one.dense(source), rtol=1e-6, atol=1e-9
        )
    # the explained logit difference sits on the last token of the last layer (BERT's MLM head
    # has a biased transform + LayerNorm between them that absorbs part of it)
    if arch != "bert":
        assert packed.node_relevance[-1, -1] == pytest.approx(packed.meta["explained"], rel=1e-6)
    if split:
        assert packed.layers[:3] == ("emb", "0.mid", "0")
        mid_to_out = packed.dense(1)
        assert np.count_nonzero(mid_to_out - np.diag(np.diag(mid_to_out))) == 0


@pytest.mark.parametrize("arch", ["llama", "gemma3_text", "qwen3"])
def test_embedding_layer_relevance_equals_input_relevance(arch, tokenizer):
    model = tiny_model(arch, "sdpa", torch.float64)
    graph = build_graph(model, tokenizer, IDS, OBJECTIVE)
    emb, grad, _, _ = input_gradient(model, torch.tensor([IDS]), OBJECTIVE, lrp=True)
    np.testing.assert_allclose(
        graph.node_relevance[0], (emb * grad).sum(-1)[0].numpy(), rtol=1e-9, atol=1e-12
    )


def test_node_threshold_skips_targets_and_says_so(tokenizer):
    model = tiny_model("llama", "sdpa", torch.float64)
    exact = build_graph(model, tokenizer, IDS, OBJECTIVE, batch_size=1)
    threshold = float(np.median(np.abs(exact.node_relevance[1:])))
    rough = build_graph(model, tokenizer, IDS, OBJECTIVE, batch_size=1, node_threshold=threshold)
    assert rough.meta["skipped_targets"] > 0
    assert rough.meta["backward_passes"] < exact.meta["backward_passes"]
    assert not rough.meta["exact"] and "approximate" in rough.meta["note"]


def test_sparse_storage_keeps_top_edges_per_target(tokenizer):
    model = tiny_model("llama", "sdpa", torch.float64)
    full = build_graph(model, tokenizer, IDS, OBJECTIVE)
    top = build_graph(model, tokenizer, IDS, OBJECTIVE, top_per_target=2)
    assert top.n_edges < full.n_edges
    for source in range(len(full.layers) - 1):
        dense, kept = full.dense(source), top.dense(source)
        for j in range(len(IDS)):
            row = np.abs(dense[j])
            if row.any():
                assert set(np.nonzero(kept[j])[0]) == set(
                    np.argsort(-row, kind="stable")[:2]
                ) - set(np.nonzero(row == 0)[0])


def test_packing_size_shrinks_with_sequence_length():
    budget = 2**30
    short = packing_size(64, 576, 1536, 9, budget)
    long = packing_size(1024, 576, 1536, 9, budget)
    assert short > long >= 1
    assert packing_size(10_000, 576, 1536, 9, 1e6) == 1


@pytest.mark.parametrize("arch", ["llama", "gemma3_text"])
def test_layer_subset_spans_several_blocks_exactly(arch, tokenizer):
    model = tiny_model(arch, "sdpa", torch.float64)
    full = build_graph(model, tokenizer, IDS, OBJECTIVE)
    subset = build_graph(model, tokenizer, IDS, OBJECTIVE, layers=[1])
    assert subset.layers == ("emb", "1")
    np.testing.assert_allclose(subset.node_relevance, full.node_relevance[[0, 2]])
    columns = subset.dense(0).sum(0)
    np.testing.assert_allclose(columns, subset.node_relevance[0], rtol=1e-6, atol=1e-9)
    with pytest.raises(ValueError, match="block indices"):
        build_graph(model, tokenizer, IDS, OBJECTIVE, layers=[5])
