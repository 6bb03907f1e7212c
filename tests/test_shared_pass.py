"""One AttnLRP pass per case: the graph's trace is the attribution's pass, so the case reads its
input relevance and scores from the trace instead of running the same forward and backward
again. Exact: the same tensors, bit for bit, as the attribution's own pass, on every tiny
architecture, with and without checkpointed blocks; a graph read from the cache leaves the
attribution its own pass."""

from __future__ import annotations

import pytest
import torch
from tiny_models import ARCHITECTURES, tiny_model

import reportgen.graph.step as step
from reportgen.attribution import input_gradient
from reportgen.cases import GraphSettings
from reportgen.graph.closed import closed_form
from reportgen.graph.step import compute_graph
from reportgen.graph.trace import trace
from reportgen.models import LoadedModel
from reportgen.objectives import Objective

IDS = [3, 15, 27, 8, 44, 9, 61, 12, 5, 70, 33, 18]
OBJECTIVE = Objective("logit_diff", 5, "by_ref_token", 7)

pytestmark = pytest.mark.usefixtures("one_thread")


def _own_pass(model, ids=IDS):
    return input_gradient(model, torch.tensor([ids]), OBJECTIVE, lrp=True)


def _assert_same_pass(shared, own):
    embeddings, gradient, logits, value = own
    assert shared is not None
    for name, mine, theirs in (
        ("embeddings", shared.embeddings, embeddings),
        ("gradient", shared.gradient, gradient),
        ("logits", shared.logits, logits),
        ("value", shared.value, value),
    ):
        assert torch.equal(mine, theirs), name
    assert gradient.abs().sum() > 0  # a pass that explains something


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_the_packed_trace_is_the_attribution_pass(arch):
    model = tiny_model(arch, "sdpa", torch.float32)
    traced = trace(model, torch.tensor([IDS]), OBJECTIVE, split=True)
    _assert_same_pass(traced.lrp_pass, _own_pass(model))


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gemma3_text"])
@pytest.mark.parametrize("checkpoint", [False, True])
def test_the_closed_form_session_is_the_attribution_pass(arch, checkpoint, tokenizer):
    model = tiny_model(arch, "sdpa", torch.float32)
    traced, _ = closed_form(model, tokenizer, IDS, OBJECTIVE, checkpoint=checkpoint)
    _assert_same_pass(traced.lrp_pass, _own_pass(model))


def test_a_graph_from_the_cache_carries_no_pass(monkeypatch, tmp_path, tokenizer):
    monkeypatch.setattr(step, "cache_dir", lambda: tmp_path)
    model = tiny_model("llama", "sdpa", torch.float32)
    loaded = LoadedModel("tiny", model, tokenizer, "test", None, "cpu", "float32")

    def graph():
        return compute_graph(
            loaded, tuple(IDS), OBJECTIVE, GraphSettings(), model_identity="t", code="test"
        )

    computed = graph()
    _assert_same_pass(computed.lrp_pass, _own_pass(model))
    assert graph().lrp_pass is None  # cached: the case runs the attribution pass itself
