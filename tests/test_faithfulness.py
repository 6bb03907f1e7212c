"""Flip test, curves, AOPC and failure patterns on toy models where the answer is known."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from tiny_models import tiny_model

from reportgen.faithfulness import failure_pattern, faithfulness
from reportgen.objectives import Objective
from reportgen.render.words import flip_sentence
from reportgen.results import Faithfulness

TARGET, CONTRAST = 1, 2


class LinearToy(torch.nn.Module):
    """f = logit(TARGET) - logit(CONTRAST) = sum_i w_i * (e_i . u) + bias: each position's share
    of f is known in closed form, so every curve can be checked by hand."""

    def __init__(self, contributions: list[float], weights: list[float], bias: float) -> None:
        super().__init__()
        n = len(contributions)
        self.embed = torch.nn.Embedding(n, 2)
        self.readout = torch.nn.Linear(2, 3)
        with torch.no_grad():
            # token i's embedding is (c_i, 0); u = readout[TARGET] - readout[CONTRAST] = (1, 0)
            self.embed.weight.zero_()
            self.embed.weight[:, 0] = torch.tensor(contributions)
            self.readout.weight.zero_()
            self.readout.weight[TARGET, 0] = 1.0
            self.readout.bias.zero_()
            self.readout.bias[CONTRAST] = -bias
        self.register_buffer("weights", torch.tensor(weights))
        self.seen: list[torch.Tensor] = []

    def get_input_embeddings(self) -> torch.nn.Embedding:
        return self.embed

    def forward(self, inputs_embeds: torch.Tensor) -> SimpleNamespace:
        self.seen.append(inputs_embeds.detach().clone())
        pooled = (inputs_embeds * self.weights[: inputs_embeds.shape[1], None]).sum(1)
        return SimpleNamespace(logits=self.readout(pooled)[:, None, :])


OBJECTIVE = Objective("logit_diff", target_id=TARGET, strategy="by_ref_token", contrast_id=CONTRAST)


def one_position_toy(n: int = 10, p: int = 6) -> LinearToy:
    """Position p carries f (contribution 5); the rest add +-0.03 each; bias -0.5."""
    contributions = [0.3 if i % 2 else -0.3 for i in range(n)]
    contributions[p] = 5.0
    weights = [0.1] * n
    weights[p] = 1.0
    return LinearToy(contributions, weights, bias=-0.5)


def own_f(model: LinearToy, ids: list[int]) -> float:
    with torch.no_grad():
        embeds = model.get_input_embeddings()(torch.tensor([ids]))
        return float(OBJECTIVE.value(model(inputs_embeds=embeds).logits[0, -1]))


def test_flip_at_one_when_the_attribution_ranks_the_decisive_token_first():
    model = one_position_toy()
    ids = list(range(10))
    relevance = [0.0] * 10
    relevance[6] = 1.0
    result = faithfulness(model, ids, OBJECTIVE, relevance, [False] * 10, budget=50)
    assert result["budget"] == 10  # K = min(budget, maskable tokens)
    assert result["flip_k"]["attnlrp"] == 1
    assert result["order"]["attnlrp"][0] == 6
    assert result["flip_k"]["grad_x_input"] == 1 and result["order"]["grad_x_input"][0] == 6
    assert result["flip_k"]["gradient"] == 1 and result["order"]["gradient"][0] == 6
    assert result["flip_k"]["random"] > 1.5
    assert result["aopc"]["attnlrp"] > result["aopc"]["random"]
    for name, curve in result["curves"].items():
        assert len(curve) == 11, name
        assert len(result["insertion"][name]) == 11, name
        assert curve[0] == pytest.approx(own_f(model, ids))
    assert result["baseline_f"] == pytest.approx(own_f(model, ids))
    assert result["gradient_f"] == pytest.approx(result["baseline_f"])
    assert len(result["random_flip_k_seeds"]) == 5
    sentence = flip_sentence(Faithfulness.from_json(result), [f"t{i}" for i in ids])
    assert sentence.startswith("masking 1 token — 't6' — flips the preference to the contrast")
    assert "random order needs" in sentence


def test_curves_and_aopc_match_the_closed_form():
    contributions, weights, bias = [1.0, -0.5, 2.0, 0.25], [1.0, 1.0, 1.0, 1.0], -0.5
    model = LinearToy(contributions, weights, bias)
    ids = [0, 1, 2, 3]
    relevance = [0.5, 0.1, 3.0, -1.0]  # order: 2, 0, 1, 3
    result = faithfulness(model, ids, OBJECTIVE, relevance, [False] * 4, budget=3)
    f0 = sum(contributions) + bias  # 2.25
    expected = [f0, f0 - 2.0, f0 - 3.0, f0 - 2.5]  # 2.25, 0.25, -0.75, -0.25
    assert result["order"]["attnlrp"] == [2, 0, 1]
    assert result["curves"]["attnlrp"] == pytest.approx(expected)
    assert result["flip_k"]["attnlrp"] == 2
    assert result["aopc"]["attnlrp"] == pytest.approx((2.0 + 3.0 + 2.5) / 3)
    # insertion: all four masked (f = bias), then unmask 2, 0, 1
    assert result["insertion"]["attnlrp"] == pytest.approx([-0.5, 1.5, 2.5, 2.0])


def test_insertion_endpoints_meet_deletion_endpoints():
    model = one_position_toy(n=8, p=3)
    ids = list(range(8))
    relevance = [float(i) for i in range(8)]
    result = faithfulness(model, ids, OBJECTIVE, relevance, [False] * 8, budget=50)
    for name in result["curves"]:
        deletion, insertion = result["curves"][name], result["insertion"][name]
        assert insertion[0] == pytest.approx(deletion[-1])  # everything masked
        assert insertion[-1] == pytest.approx(deletion[0])  # nothing masked


def test_special_tokens_are_never_masked_nor_ranked():
    model = one_position_toy()
    ids = list(range(10))
    special = [i in (0, 6, 9) for i in ids]  # the decisive position is special
    base = model.get_input_embeddings()(torch.tensor(ids)).detach()
    result = faithfulness(model, ids, OBJECTIVE, [1.0] * 10, special, budget=50)
    assert result["budget"] == 7 and result["maskable"] == 7
    for name, order in result["order"].items():
        assert not {0, 6, 9} & set(order), name
    for batch in model.seen:
        for pos in (0, 6, 9):
            assert torch.equal(batch[:, pos], base[pos].expand_as(batch[:, pos]))
    # only the decisive token could flip it, and it is protected
    assert all(result["flip_k"][name] is None for name in ("attnlrp", "grad_x_input", "gradient"))
    assert result["flip_k"]["random"] is None
    assert flip_sentence(Faithfulness.from_json(result), [str(i) for i in ids]) == (
        "no ordering flips the preference within 7 masked tokens."
    )


def test_random_counts_non_flipping_seeds_as_budget_plus_one():
    model = one_position_toy(n=10, p=6)
    ids = list(range(10))
    result = faithfulness(model, ids, OBJECTIVE, [0.0] * 10, [False] * 10, budget=3, random_seeds=8)
    seeds = result["random_flip_k_seeds"]
    assert any(k is None for k in seeds) and any(k is not None for k in seeds)
    expected = sum(k if k is not None else 4 for k in seeds) / len(seeds)
    assert result["flip_k"]["random"] == pytest.approx(expected)
    curves = result["curves"]["random"]
    assert len(curves) == 4 and curves[0] == pytest.approx(result["baseline_f"])


def test_nothing_to_flip_when_the_model_already_prefers_the_contrast():
    model = LinearToy([0.1, 0.2], [1.0, 1.0], bias=-1.0)
    result = faithfulness(model, [0, 1], OBJECTIVE, [1.0, 0.5], [False, False])
    assert result["baseline_f"] < 0 and "note" in result
    assert all(v is None for v in result["flip_k"].values())
    assert "nothing to flip" in flip_sentence(Faithfulness.from_json(result), ["a", "b"])


def test_unk_mask_uses_the_given_token_embedding():
    model = LinearToy([1.0, 2.0, 0.5], [1.0, 1.0, 1.0], bias=-1.0)
    result = faithfulness(
        model, [1, 1, 1], OBJECTIVE, [1.0, 2.0, 3.0], [False] * 3, mask="unk", mask_token_id=2
    )
    # f0 = 3 * 2 - 1 = 5; each masked token turns 2.0 into 0.5
    assert result["curves"]["attnlrp"] == pytest.approx([5.0, 3.5, 2.0, 0.5])
    assert "unk" in result["mask"]
    with pytest.raises(ValueError):
        faithfulness(model, [1, 1, 1], OBJECTIVE, [1.0, 2.0, 3.0], [False] * 3, mask="blank")


def test_real_architecture_batch_matches_the_single_forward():
    model = tiny_model("llama")
    ids = [1, 5, 9, 13, 17, 21, 25, 29]
    logits = model(input_ids=torch.tensor([ids])).logits[0, -1]
    target, contrast = logits.topk(2).indices.tolist()
    objective = Objective(
        "logit_diff", target_id=target, strategy="by_ref_token", contrast_id=contrast
    )
    special = [True] + [False] * 7
    result = faithfulness(
        model, ids, objective, [0.1 * i for i in range(8)], special, budget=5, batch_size=4
    )
    f = float(objective.value(logits.detach()))
    assert result["baseline_f"] == pytest.approx(f, abs=1e-4)
    assert result["gradient_f"] == pytest.approx(f, abs=1e-4)
    assert result["order"]["attnlrp"] == [7, 6, 5, 4, 3]
    assert all(len(c) == 6 for c in result["curves"].values())
    assert all(0 not in order for order in result["order"].values())
    # plain data only
    import json

    json.dumps(result)


def test_failure_pattern_rules():
    special = [True] + [False] * 9
    spans = [(1, 3)]
    # relevant tokens 1, 2 carry the push to the target and are the top tokens: none
    rel = [0.0, 2.0, 1.5, 0.1, 0.05, -0.1, 0.02, 0.01, -0.02, 0.03]
    got = failure_pattern(rel, special, spans)
    # 3 of the top 5 positive tokens lie outside, but they hold 5 % of the top-5 mass
    assert got["pattern"] == "none" and got["top_outside"] == 3
    assert got["relevant_sum"] == pytest.approx(3.5)
    # relevant tokens push against the target, irrelevant ones carry it: URT+OIT
    rel = [0.0, -0.5, -0.2, 1.0, 0.8, 0.7, 0.6, 0.5, 0.0, 0.0]
    got = failure_pattern(rel, special, spans)
    assert got["pattern"] == "URT+OIT" and got["top_outside"] == 5
    # relevant tokens are barely used but still positive, top tokens outside: URT+OIT
    rel = [0.0, 0.01, 0.02, 1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4]
    assert failure_pattern(rel, special, spans)["pattern"] == "URT+OIT"
    # relevant token weighs more than its share, yet the push from elsewhere is larger: OIT
    rel = [0.0, 3.0, 2.0, 1.0, 0.9, 0.8, 0.01, 0.01, 0.01, 0.01]
    spans_one = [(1, 2)]
    got = failure_pattern(rel, special, spans_one)
    assert got["pattern"] == "OIT" and got["top_outside"] == 4
    # relevant tokens barely used, the rest pulls towards the contrast: URT only
    rel = [0.0, 0.1, 0.1, -1.0, -0.8, 0.05, 0.0, 0.0, 0.0, 0.0]
    got = failure_pattern(rel, special, spans)
    assert got["pattern"] == "URT" and got["relevant_sum"] == pytest.approx(0.2)
    assert got["relevant_share"] == pytest.approx(0.2 / 2.05) and got[
        "token_share"
    ] == pytest.approx(2 / 9)
    assert 0 < got["relevant_share"] <= 1
    # no spans, or spans covering only special tokens: no hint
    assert failure_pattern(rel, special, []) is None
    assert failure_pattern(rel, special, [(0, 1)]) is None


def test_insertion_can_be_skipped():
    model = one_position_toy()
    full = faithfulness(model, list(range(10)), OBJECTIVE, [0.0] * 10, [False] * 10)
    short = faithfulness(
        model, list(range(10)), OBJECTIVE, [0.0] * 10, [False] * 10, insertion=False
    )
    assert short["insertion"] == {}
    assert short["curves"] == full["curves"] and short["flip_k"] == full["flip_k"]
