"""Interventions (node ablation) and continuations against independent recomputations: plain
forward hooks on every tiny architecture in float64, a manual one-forward multi-layer replacement,
a plain greedy loop; and the SmolLM2 case in float32."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from plain_hooks import reference_logits
from tiny_models import ARCHITECTURES, tiny_model, tiny_tokenizer

from reportgen.continuations import Continuations, case_continuations
from reportgen.graph.types import AttributionGraph
from reportgen.interventions import (
    ablate,
    case_interventions,
    graph_nodes,
    spearman,
    suffix_cheaper,
)
from reportgen.objectives import Objective
from reportgen.results import Interventions

IDS = [1, 5, 7, 9, 11, 13, 20, 22, 3, 17]
OBJECTIVE = Objective("logit_diff", 10, "by_ref_token", 11)


def reference_f(model, ids, objective, nodes, baseline="mean"):
    """f after replacing each (layer, position) of ``nodes`` in one plain forward
    (:func:`plain_hooks.reference_logits`: a clean forward records every layer's states, a
    second one swaps the rows in with plain hooks)."""
    return float(objective.value(reference_logits(model, ids, ids, nodes, baseline=baseline)))


SETS = [
    [("emb", 2)],
    [("emb", 9)],
    [("0", 4)],
    [("0", 9)],
    [("1", 9)],
    [("1", 3)],
    [("emb", 0), ("0", 8), ("1", 3), ("1", 9)],  # several layers in one forward
]


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_ablation_equals_plain_hooks_on_every_architecture(arch, one_thread):
    model = tiny_model(arch, dtype=torch.float64)
    run = ablate(model, IDS, OBJECTIVE, SETS)
    assert run.f_clean == pytest.approx(reference_f(model, IDS, OBJECTIVE, []), rel=1e-12)
    expected = [reference_f(model, IDS, OBJECTIVE, nodes) for nodes in SETS]
    np.testing.assert_allclose(run.f, expected, rtol=1e-10, atol=1e-13)
    # the ablations do something: not every set leaves f where it was
    assert max(abs(f - run.f_clean) for f in run.f) > 1e-4
    if arch != "bert":  # causal: a last-layer state before the last position reaches nothing
        assert run.f[5] == pytest.approx(run.f_clean, abs=1e-13)
    zero = ablate(model, IDS, OBJECTIVE, SETS[:3], baseline="zero")
    np.testing.assert_allclose(
        zero.f,
        [reference_f(model, IDS, OBJECTIVE, nodes, "zero") for nodes in SETS[:3]],
        rtol=1e-10,
        atol=1e-13,
    )


def test_small_batches_give_the_same_numbers(one_thread):
    """A batch holding one row at a time (a long input's schedule) changes no number."""
    model = tiny_model("llama", dtype=torch.float64)
    wide = ablate(model, IDS, OBJECTIVE, SETS)
    narrow = ablate(model, IDS, OBJECTIVE, SETS, batch_tokens=1)
    np.testing.assert_allclose(narrow.f, wide.f, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("arch", ["qwen2", "llama", "mistral", "gemma3_text"])
def test_a_late_node_set_runs_only_the_positions_from_its_first_on(arch, one_thread):
    """Causal: ablating from position i on leaves the earlier positions as they were, so a late
    set runs on positions i.. from the clean forward's cache, with the whole forward's f. The
    clean forward's cache keeps every position, so a sliding window (4 positions in mistral's
    and gemma3's tiny configs, shorter than the input) cuts exactly too: its mask drops what
    the window leaves out."""
    model = tiny_model(arch, dtype=torch.float64)
    sets = [[("emb", len(IDS) - 2)], [("0", 8), ("1", 9)], [("0", 1)]]
    lengths = []
    embed = model.get_input_embeddings()
    handle = embed.register_forward_hook(lambda m, a, out: lengths.append(out.shape[1]))
    try:
        run = ablate(model, IDS, OBJECTIVE, sets)
    finally:
        handle.remove()
    n = len(IDS)
    # the clean forward, then the late sets alone (2 positions each), then the early set whole
    assert lengths == [n, 2, 2, n]
    expected = [reference_f(model, IDS, OBJECTIVE, nodes) for nodes in sets]
    np.testing.assert_allclose(run.f, expected, rtol=1e-10, atol=1e-13)
    assert min(abs(f - run.f_clean) for f in run.f[:2]) > 1e-6  # the late sets do something


def test_the_cheaper_way_is_chosen_by_token_blocks():
    # 2,000 tokens, 28 blocks: a node at position 1,990 of block 10 costs 10 x 28 token-blocks
    # from the cache, against 2,000 x 17 as a row of a batched forward
    assert suffix_cheaper(2000, 1990, 10, 28)
    assert not suffix_cheaper(2000, 5, 10, 28)  # early: a cut saves almost nothing
    assert not suffix_cheaper(2000, 1990, 27, 28)  # the last block: a row costs nothing
    assert suffix_cheaper(2000, 1000, -1, 28)  # the embeddings: every block either way


def test_ablating_nothing_changes_nothing(one_thread):
    model = tiny_model("qwen2", dtype=torch.float64)
    x = torch.tensor([IDS])
    with torch.no_grad():
        before = model(input_ids=x).logits
    run = ablate(model, IDS, OBJECTIVE, [[], [("0", 3)], []])
    assert run.f[0] == run.f[2] == run.f_clean
    assert run.f_clean == pytest.approx(float(OBJECTIVE.value(before[0, -1])), rel=1e-13)
    assert run.f[1] != run.f_clean
    with torch.no_grad():
        after = model(input_ids=x).logits  # no hook is left behind
    assert torch.equal(before, after)


def test_bad_nodes_are_refused(one_thread):
    model = tiny_model("llama", dtype=torch.float64)
    with pytest.raises(ValueError, match="0.mid"):
        ablate(model, IDS, OBJECTIVE, [[("0.mid", 1)]])
    with pytest.raises(ValueError, match="outside"):
        ablate(model, IDS, OBJECTIVE, [[("0", 10)]])
    with pytest.raises(ValueError, match="baseline"):
        ablate(model, IDS, OBJECTIVE, [[("0", 1)]], baseline="resample")


def toy_graph(n: int, relevance: np.ndarray, edges: list[tuple[int, int, int, int]]):
    """A graph over layers emb, 0, 1 with the given relevance and (source layer, source,
    target layer, target) edges of weight 1."""
    return AttributionGraph(
        tokens=tuple(f"t{i}" for i in range(n)),
        layers=("emb", "0", "1"),
        node_relevance=relevance,
        edge_source_layer=np.array([e[0] for e in edges], dtype=np.int16),
        edge_source=np.array([e[1] for e in edges], dtype=np.int32),
        edge_target_layer=np.array([e[2] for e in edges], dtype=np.int16),
        edge_target=np.array([e[3] for e in edges], dtype=np.int32),
        edge_weight=np.ones(len(edges), dtype=np.float32),
    )


def test_case_interventions_strongest_nodes_subgraph_and_correlation(one_thread):
    model = tiny_model("mistral", dtype=torch.float64)
    n = len(IDS)
    relevance = np.zeros((3, n))
    relevance[0, [2, 5, 9]] = [0.5, -0.9, 0.3]
    relevance[1, [5, 9]] = [0.2, 0.7]
    relevance[2, [9, 4]] = [5.0, 4.0]  # the output node (strongest) and an inactive node
    edges = [(0, 2, 1, 5), (0, 5, 1, 5), (0, 9, 1, 9), (1, 5, 2, 9), (1, 9, 2, 9)]
    graph = toy_graph(n, relevance, edges)
    strongest, everything = graph_nodes(graph)
    assert strongest == [("emb", 5), ("0", 9), ("emb", 2), ("emb", 9), ("0", 5)]
    assert everything == [("emb", 2), ("emb", 5), ("emb", 9), ("0", 5), ("0", 9)]

    result = case_interventions(model, IDS, OBJECTIVE, graph, count=4, tokenizer=tiny_tokenizer())
    assert [(e.layer, e.position) for e in result.nodes] == strongest[:4]
    for effect in result.nodes:
        assert effect.f_ablated == pytest.approx(
            reference_f(model, IDS, OBJECTIVE, [(effect.layer, effect.position)]), rel=1e-10
        )
        assert effect.relevance == relevance[("emb", "0", "1").index(effect.layer), effect.position]
    # the subgraph: a manual one-forward replacement at every layer at once
    manual = reference_f(model, IDS, OBJECTIVE, everything)
    assert result.subgraph.nodes == tuple(everything)
    assert result.subgraph.f_ablated == pytest.approx(manual, rel=1e-10)
    assert result.subgraph.flips == (result.f_clean > 0 >= manual)
    assert result.subgraph.top_token == tiny_tokenizer().decode([result.subgraph.top_id])
    deltas = [result.f_clean - e.f_ablated for e in result.nodes]
    assert result.deltas() == deltas
    assert result.rank_correlation == pytest.approx(
        spearman([e.relevance for e in result.nodes], deltas)
    )
    back = Interventions.from_json(json.loads(json.dumps(result.to_json())))
    assert back == result
    data = result.to_json()
    assert set(data) == {"baseline", "f_clean", "nodes", "subgraph", "rank_correlation"}
    assert set(data["nodes"][0]) == {"layer", "position", "relevance", "f_ablated"}
    assert data["subgraph"]["nodes"][0] == ["emb", 2]


def test_a_graph_without_nodes_has_no_subgraph(one_thread):
    model = tiny_model("llama", dtype=torch.float64)
    graph = toy_graph(len(IDS), np.zeros((3, len(IDS))), [])
    result = case_interventions(model, IDS, OBJECTIVE, graph)
    assert result.nodes == () and result.subgraph is None and result.rank_correlation is None


def test_spearman_matches_the_definition():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # ties get average ranks: x ranks (0, 1.5, 1.5, 3), y ranks (0, 1, 2, 3)
    rx, ry = np.array([0, 1.5, 1.5, 3]), np.array([0, 1, 2, 3.0])
    rx, ry = rx - rx.mean(), ry - ry.mean()
    expected = (rx * ry).sum() / math.sqrt((rx * rx).sum() * (ry * ry).sum())
    assert spearman([0.1, 0.5, 0.5, 0.9], [-2, 0, 1, 7]) == pytest.approx(expected)
    assert spearman([1, 1, 1], [1, 2, 3]) is None
    assert spearman([1], [2]) is None


# --- continuations --------------------------------------------------------------------------


def plain_greedy(model, ids, tokens, eos):
    """Argmax of a full forward (no KV cache) after each new token, up to an EOS."""
    ids = list(ids)
    new = []
    for _ in range(tokens):
        with torch.no_grad():
            token = int(model(input_ids=torch.tensor([ids])).logits[0, -1].argmax())
        new.append(token)
        ids.append(token)
        if token in eos:
            break
    return new


@pytest.mark.parametrize("arch", ["llama", "gpt2", "gemma3_text"])
def test_continuations_equal_a_plain_greedy_loop(arch, one_thread):
    model = tiny_model(arch, dtype=torch.float64)
    tokenizer = tiny_tokenizer()
    read = []  # positions each forward reads
    embed = model.get_input_embeddings()
    handle = embed.register_forward_hook(lambda m, a, out: read.append(tuple(out.shape[:2])))
    try:
        result = case_continuations(model, tokenizer, IDS, 10, 11, tokens=12)
    finally:
        handle.remove()
    # the prompt is read once (one row), then both paths go on from its shared cache
    assert read[0] == (1, len(IDS)) and read[1] == (2, 1) and len(read) <= 13
    assert result.source == "greedy" and result.tokens == 12
    for token, text in ((10, result.target), (11, result.contrast)):
        new = plain_greedy(model, [*IDS, token], 12, {tokenizer.eos_token_id})
        assert text == tokenizer.decode(new)
    assert result.target != result.contrast
    from transformers import GenerationConfig

    config = GenerationConfig(max_new_tokens=12, do_sample=False, eos_token_id=2, pad_token_id=0)
    x = torch.tensor([[*IDS, 10]])
    with torch.no_grad():
        generated = model.generate(
            input_ids=x, attention_mask=torch.ones_like(x), generation_config=config
        )
    assert result.target == tokenizer.decode(generated[0, len(IDS) + 1 :])
    no_contrast = case_continuations(model, tokenizer, IDS, 10, None, tokens=12)
    assert no_contrast.contrast is None and no_contrast.target == result.target


def test_continuations_stop_at_the_end_of_sequence(one_thread):
    model = tiny_model("llama", dtype=torch.float64)
    tokenizer = tiny_tokenizer()
    # make the EOS token the greedy choice after the target token
    first = plain_greedy(model, [*IDS, 10], 1, set())[0]
    model.generation_config.eos_token_id = first
    result = case_continuations(model, tokenizer, IDS, 10, 11, tokens=12)
    assert result.target == tokenizer.decode([first])


def test_nothing_follows_an_end_of_sequence_token(one_thread):
    model = tiny_model("llama", dtype=torch.float64)
    tokenizer = tiny_tokenizer()
    eos = tokenizer.eos_token_id
    result = case_continuations(model, tokenizer, IDS, eos, 11, tokens=5)
    assert result.target == ""
    assert result.contrast == tokenizer.decode(plain_greedy(model, [*IDS, 11], 5, {eos}))
    source = {"target_text": "</s>", "contrast_text": "lyon", "failing_output": "x"}
    source["recovering_output"] = "the lyon a b"
    reused = case_continuations(None, tokenizer, IDS, eos, 11, source=source, prefix="the ")
    assert reused == Continuations("", " a b", 32, "case file")


def test_a_masked_lm_has_no_continuation(one_thread):
    assert case_continuations(tiny_model("bert"), tiny_tokenizer(), IDS, 10, 11) is None


def test_collected_paths_are_reused_from_the_case_file():
    tokenizer = tiny_tokenizer()
    target, contrast = tokenizer.decode([10]), tokenizer.decode([11])
    source = {
        "target_text": target,
        "contrast_text": contrast,
        "failing_output": "the capital of" + target + " a b c",
        "recovering_output": "the capital of" + contrast + " red blue green yellow",
    }
    result = case_continuations(
        None, tokenizer, IDS, 10, 11, source=source, prefix="the capital of", tokens=3
    )
    assert result == Continuations(" a b c", " red blue green", 3, "case file")
    # a case file whose paths do not start with the prefix and token: generated instead
    model = tiny_model("llama", dtype=torch.float64)
    other = case_continuations(model, tokenizer, IDS, 10, 11, source=source, prefix="x", tokens=3)
    assert other.source == "greedy"
    assert other.target == tokenizer.decode(plain_greedy(model, [*IDS, 10], 3, {2}))


# --- the real model ---------------------------------------------------------------------------


@pytest.mark.smollm2
def test_interventions_on_smollm2_equal_plain_hooks():
    from reportgen.cases import load_case
    from reportgen.models import load_model
    from reportgen.pipeline import prepare_question

    case = load_case(Path(__file__).resolve().parent.parent / "cases" / "closest-planet-venus.toml")
    loaded = load_model(case.model)
    prepared = prepare_question(loaded, case.question)
    ids, objective = list(prepared.inputs.token_ids), prepared.objective
    n, last = len(ids), str(loaded.model.config.num_hidden_layers - 1)
    sets = [
        [("emb", n - 1)],
        [("5", n - 1)],
        [("15", n - 3)],
        [("28", n - 1)],
        [(last, n - 2)],
        [("emb", 0), ("3", n - 1), ("12", n - 2), ("20", n - 1)],
    ]
    run = ablate(loaded.model, ids, objective, sets)
    scale = abs(run.f_clean)
    assert run.f_clean == pytest.approx(float(prepared_f(loaded, ids, objective)), rel=1e-5)
    for nodes, f in zip(sets, run.f, strict=True):
        expected = reference_f(loaded.model, ids, objective, nodes)
        assert abs(f - expected) <= 1e-3 * max(abs(expected), scale), nodes
    assert run.f[4] == pytest.approx(run.f_clean, rel=1e-6)  # causal: reaches nothing
    assert abs(run.f[0] - run.f_clean) > 1e-3 * scale  # the last input token matters


def prepared_f(loaded, ids, objective):
    with torch.no_grad():
        logits = loaded.model(input_ids=torch.tensor([ids])).logits[0, -1]
    return objective.value(logits)


# --- the dossier --------------------------------------------------------------------------------


def test_the_dossier_and_data_json_show_interventions_and_continuations(tmp_path):
    from dataclasses import replace

    from render_fixtures import make_result

    from reportgen.render.html import render_dossier
    from reportgen.results import CaseResult, NodeEffect, SubgraphEffect

    interventions = Interventions(
        baseline="mean",
        f_clean=2.0,
        nodes=(
            NodeEffect("emb", 4, 0.8, 0.5),
            NodeEffect("0", 3, -0.3, 2.4),
            NodeEffect("1", 2, 0.1, 2.0),
        ),
        subgraph=SubgraphEffect((("emb", 4), ("0", 3)), -1.25, True, 7, " Blue"),
        rank_correlation=0.5,
    )
    continuations = Continuations(" and more <b>red</b>", "\nBlue is a colour", 32)
    result = replace(make_result(), interventions=interventions, continuations=continuations)
    back = CaseResult.from_json(json.loads(result.dumps()))
    assert back.interventions == interventions and back.continuations == continuations

    html = render_dossier(result, tmp_path).read_text(encoding="utf-8")
    section = html[html.index('<section id="circuit">') :]
    section = section[: section.index("</section>")]
    assert "flips the prediction" in section and "f goes from +2 to -1.25" in section
    assert "now prefers the contrast" in section and "&#39; Blue&#39;" in section
    assert "ρ = +0.50" in section and "partly" in section
    assert section.count("<tr>") == 4  # the head and one row per node
    assert "+1.5" in section and "-0.4" in section  # Δf of the first two nodes
    assert "&lt;b&gt;red&lt;/b&gt;" in section and "\nBlue is a colour" in section
    data = json.loads((tmp_path / "data.json").read_text(encoding="utf-8"))
    assert data["interventions"]["subgraph"]["flips"] is True
    assert data["interventions"]["nodes"][1] == {
        "layer": "0",
        "position": 3,
        "relevance": -0.3,
        "f_ablated": 2.4,
    }
    assert data["continuations"]["tokens"] == 32

    # a result without them renders no section
    plain = render_dossier(make_result(), tmp_path / "plain").read_text(encoding="utf-8")
    assert 'id="circuit"' not in plain


def test_words_for_a_subgraph_that_does_not_flip():
    from reportgen.render.circuits import correlation_words, subgraph_words
    from reportgen.results import SubgraphEffect

    base = Interventions("mean", 2.0, (), SubgraphEffect((("0", 1),), 1.5, False, 3), None)
    words = subgraph_words(base, " Red", " Blue")
    assert "does not flip" in words and "25% of f removed" in words
    risen = replace_subgraph(base, 3.0)
    assert "f does not fall" in subgraph_words(risen, " Red", " Blue")
    no_pref = Interventions("mean", -1.0, (), base.subgraph, None)
    assert "does not prefer the target" in subgraph_words(no_pref, " Red", " Blue")
    assert "no rank correlation" in correlation_words(None, 1)
    assert "hardly" in correlation_words(0.1, 10) and "largely" in correlation_words(0.9, 10)


def replace_subgraph(interventions, f_ablated):
    from dataclasses import replace

    return replace(interventions, subgraph=replace(interventions.subgraph, f_ablated=f_ablated))


# --- a pinned subgraph from the case file -------------------------------------------------------

PINNED_CASE = """
id = "pinned"
model = "tiny"
prompt = "the capital of france is"
target = "paris"
contrast = "lyon"

[graph]
pinned = [["emb", 2], ["0", 5], ["1", 5]]
supernodes = [
  { label = "subject", nodes = [["emb", 2], ["emb", 3]] },
  { label = "answer", nodes = [["1", 5]] },
]
"""


def test_case_files_pin_nodes_and_group_them(tmp_path):
    import tomllib

    from reportgen.cases import parse_case
    from reportgen.errors import CaseError

    case = parse_case(tomllib.loads(PINNED_CASE), "pinned.toml")
    assert case.graph.ablation == "mean"
    assert (
        parse_case(tomllib.loads(PINNED_CASE + 'ablation = "zero"\n'), "z").graph.ablation == "zero"
    )
    assert case.graph.pinned == (("emb", 2), ("0", 5), ("1", 5))
    assert case.graph.supernodes == (
        ("subject", (("emb", 2), ("emb", 3))),
        ("answer", (("1", 5),)),
    )
    bad = {
        'pinned = [["emb", -1]]': "graph.pinned[0]",
        'pinned = [["layer4", 1]]': "graph.pinned[0]",
        'pinned = [["3", 1], ["3", 1]]': "graph.pinned[1]",
        'pinned = "emb 1"': "graph.pinned",
        'ablation = "resample"': "graph.ablation",
        'supernodes = [{ label = "", nodes = [["emb", 1]] }]': "graph.supernodes[0].label",
        'supernodes = [{ label = "a", nodes = [] }]': "graph.supernodes[0].nodes",
        'supernodes = [{ label = "a", nodes = [["emb", 1]], colour = "red" }]': "graph.supernodes[0]",
        'supernodes = [{ label = "a", nodes = [["emb", 1]] }, { label = "b", nodes = [["emb", 1]] }]': "graph.supernodes[1].nodes",
    }
    head = PINNED_CASE.split("[graph]")[0] + "[graph]\n"
    for line, field in bad.items():
        with pytest.raises(CaseError) as error:
            parse_case(tomllib.loads(head + line), "bad.toml")
        assert error.value.field == field, line
        assert "\n" not in str(error.value)


def test_pinned_nodes_are_checked_against_the_graph_and_ablated(one_thread):
    import tomllib

    from reportgen.cases import parse_case
    from reportgen.errors import CaseError
    from reportgen.interventions import pinned_meta

    case = parse_case(tomllib.loads(PINNED_CASE), "pinned.toml")
    n = len(IDS)
    relevance = np.zeros((3, n))
    relevance[0, 2], relevance[1, 5], relevance[2, n - 1] = 0.4, -0.2, 1.0
    graph = toy_graph(n, relevance, [(0, 2, 1, 5), (1, 5, 2, n - 1)])
    meta = pinned_meta(case, graph)
    assert meta["pinned"] == [["emb", 2], ["0", 5], ["1", 5], ["emb", 3]]  # groups pinned too
    assert meta["supernodes"][0] == {"label": "subject", "nodes": [["emb", 2], ["emb", 3]]}
    model = tiny_model("llama", dtype=torch.float64)
    pinned = [tuple(node) for node in meta["pinned"]]
    groups = [(g["label"], [tuple(node) for node in g["nodes"]]) for g in meta["supernodes"]]
    result = case_interventions(model, IDS, OBJECTIVE, graph, pinned=pinned, supernodes=groups)
    assert result.pinned.f_ablated == pytest.approx(
        reference_f(model, IDS, OBJECTIVE, pinned), rel=1e-10
    )
    for (label, nodes), (got_label, effect) in zip(groups, result.supernodes, strict=True):
        assert got_label == label
        assert effect.f_ablated == pytest.approx(
            reference_f(model, IDS, OBJECTIVE, nodes), rel=1e-10
        )
    back = Interventions.from_json(json.loads(json.dumps(result.to_json())))
    assert back == result and result.to_json()["supernodes"][1]["label"] == "answer"
    assert "pinned" not in case_interventions(model, IDS, OBJECTIVE, graph).to_json()

    for line, field in {
        'pinned = [["7", 1]]': "graph.pinned[0]",
        'pinned = [["emb", 99]]': "graph.pinned[0]",
        'supernodes = [{ label = "a", nodes = [["0.mid", 1]] }]': "graph.supernodes[0].nodes[0]",
    }.items():
        head = PINNED_CASE.split("[graph]")[0] + "[graph]\n"
        with pytest.raises(CaseError) as error:
            pinned_meta(parse_case(tomllib.loads(head + line), "p.toml"), graph)
        assert error.value.field == field


def test_the_case_chooses_zero_ablation(one_thread):
    import tomllib
    from types import SimpleNamespace

    from reportgen.cases import parse_case
    from reportgen.interventions import case_circuit

    head = PINNED_CASE.split("[graph]")[0]
    case = parse_case(tomllib.loads(head + '[graph]\nablation = "zero"\n'), "z.toml")
    model, tokenizer = tiny_model("llama", dtype=torch.float64), tiny_tokenizer()
    relevance = np.zeros((3, len(IDS)))
    relevance[0, 2] = 0.5
    graph = toy_graph(len(IDS), relevance, [(0, 2, 1, 2), (1, 2, 2, len(IDS) - 1)])
    question = SimpleNamespace(
        inputs=SimpleNamespace(token_ids=tuple(IDS)),
        objective=OBJECTIVE,
        contrast=SimpleNamespace(id=11),
    )
    circuit = case_circuit(SimpleNamespace(model=model, tokenizer=tokenizer), case, question, graph)
    assert circuit.interventions.baseline == "zero" and circuit.pinned == {}
    assert circuit.interventions.nodes[0].f_ablated == pytest.approx(
        reference_f(model, IDS, OBJECTIVE, [("emb", 2)], "zero"), rel=1e-10
    )
    assert circuit.continuations.source == "greedy"
