"""The dossier's graph explorer data: bounded, faithful to the graph, deterministic, escaped."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
from render_fixtures import hostile_result, make_result, random_graph

from reportgen.render import explorer as explorer_mod
from reportgen.render.explorer import explorer_data, node_id
from reportgen.render.html import render_dossier
from reportgen.render.tokens import visible_text
from reportgen.results import CaseResult, UnitRelevance


def embedded(html: str) -> dict:
    match = re.search(
        r'<script type="application/json" id="graph-explorer-data">(.*?)</script>', html, re.S
    )
    assert match, "no explorer data block"
    return json.loads(match.group(1))


def test_explorer_data_is_the_pruned_graph() -> None:
    result = make_result()
    graph = result.graph.to_json()
    data = explorer_data(result)
    assert data["layers"] == graph["layers"]
    index = {name: i for i, name in enumerate(graph["layers"])}
    # every graph edge is drawn, with its weight, between the right nodes
    drawn = sorted(
        (
            data["layers"][data["nodes"][s][0]],
            data["nodes"][s][1],
            data["layers"][data["nodes"][t][0]],
            data["nodes"][t][1],
            w,
        )
        for s, t, w in data["edges"]
    )
    expected = sorted(
        (e["source_layer"], e["source"], e["target_layer"], e["target"], e["weight"])
        for e in graph["edges"]
    )
    # the same edges; weights agree to the 6 significant digits the explorer keeps
    assert [d[:4] for d in drawn] == [e[:4] for e in expected]
    assert [d[4] for d in drawn] == pytest.approx([e[4] for e in expected], rel=1e-6)
    for li, pos, rel in data["nodes"]:
        assert rel == pytest.approx(graph["node_relevance"][li][pos], rel=1e-6)
    # the output node is (last layer, last position); the neuron detail is on its node
    assert data["nodes"][data["output"]][:2] == [len(graph["layers"]) - 1, len(graph["tokens"]) - 1]
    assert data["neurons"] == {}  # the fixture's neuron node (layer 1, #3) is not in the graph
    neuron = dataclasses.replace(
        result.neurons[0], layer="0.mid", mlp_neurons=(UnitRelevance(9, 0.5),)
    )
    with_neuron = explorer_data(CaseResult(**{**result.__dict__, "neurons": [neuron]}))
    assert with_neuron["neurons"] == {
        node_id(index["0.mid"], 3): {"top": [[17, 0.2], [5, -0.1]], "mlp": [[9, 0.5]]}
    }
    # labels are the decoded token texts (as in the heatmap), with whitespace made visible
    texts = result.attribution.token_texts
    assert data["labels"] == [visible_text(texts[p]) for p in data["columns"]]
    assert "\u21b5" in [visible_text(t) for t in texts]  # the fixture's "\n" token
    assert data["counts"]["edges_drawn"] == data["counts"]["edges_total"] == 4


def big_result(n_tokens: int = 10_000, n_layers: int = 31, per_layer: int = 1500) -> CaseResult:
    base = make_result("big", texts=["x"] * 9)
    return CaseResult(**{**base.__dict__, "graph": random_graph(n_tokens, n_layers, per_layer)})


def test_large_graph_is_capped_to_its_strongest_edges() -> None:
    result = big_result()
    data = explorer_data(result)
    counts = data["counts"]
    assert counts["edges_total"] == 30 * 1500
    assert len(data["nodes"]) <= explorer_mod.MAX_NODES
    assert 0 < len(data["edges"]) <= explorer_mod.MAX_EDGES
    # the strongest edge of the whole graph is drawn, and nothing weaker than a dropped edge
    # that fitted the node budget: the drawn weights are the top of the |weight| order
    strongest = max(abs(e.weight) for e in result.graph.edges())
    assert max(abs(w) for _, _, w in data["edges"]) == float(f"{strongest:.6g}")
    assert len(json.dumps(data)) < 400_000
    # the token axis holds only positions with a drawn node
    assert len(data["columns"]) == len({n[1] for n in data["nodes"]})


def test_page_embeds_the_data_and_is_byte_identical(tmp_path: Path) -> None:
    first = render_dossier(hostile_result(), tmp_path / "a").read_text(encoding="utf-8")
    second = render_dossier(hostile_result(), tmp_path / "b").read_text(encoding="utf-8")
    assert first == second
    data = embedded(first)
    assert "</script>" in data["layers"] and "<script>alert(1)</script>" in data["labels"]
    assert data == json.loads(json.dumps(explorer_data(hostile_result())))
    assert '<script src="../assets/explorer.js"></script>' in first
    # the Vega graph chart is gone; the layer sums chart stays in the graph section
    assert '"chart-graph"' not in first and "chart-layers" in first


def test_single_file_inlines_the_explorer(tmp_path: Path) -> None:
    html = render_dossier(make_result(), tmp_path, single_file=True).read_text(encoding="utf-8")
    assert 'src="../assets/explorer.js"' not in html and 'href="../assets/explorer.css"' not in html
    assert "reportgen graph explorer" in html and ".gx-node" in html
