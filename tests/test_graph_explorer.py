"""The dossier's graph explorer data: bounded, faithful to the graph, deterministic, escaped."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
from render_fixtures import circuit_result, hostile_result, make_result, random_graph

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


def test_explorer_data_carries_the_case_pins_and_the_interventions() -> None:
    result = circuit_result()
    data = explorer_data(result)
    # the case file's [graph] pinned and supernodes, as the explorer's ids n<layer index>-<pos>
    assert data["pinned"] == {
        "ids": ["n0-1", "n1-2", "n3-8", "n0-0"],
        "supernodes": [["subject", "n0-1", "n0-0"]],
    }
    iv = data["interventions"]
    assert iv["f_clean"] == 1.25 and iv["baseline"] == "mean"
    assert iv["nodes"] == {"n0-1": 0.375, "n3-8": -0.625}
    assert iv["groups"] == [
        {"label": "", "ids": ["n0-1", "n1-2", "n3-8", "n0-0"], "f_ablated": -0.5, "flips": True},
        {"label": "subject", "ids": ["n0-1", "n0-0"], "f_ablated": 0.1875, "flips": False},
    ]
    assert iv["subgraph"] == {"count": 3, "f_ablated": -0.875, "flips": True}
    # the drawn columns' token ids: an exported node's Neuronpedia id E_<token id>_<position>
    assert data["token_ids"] == [result.attribution.token_ids[p] for p in data["columns"]]
    assert data["case_id"] == "circuit-case"
    # a pinned node without an edge is drawn all the same (and counted)
    lone = result.graph.with_meta(pinned=[["0.mid", 6]], supernodes=[])
    with_lone = explorer_data(CaseResult(**{**result.__dict__, "graph": lone}))
    assert [2, 6] in [n[:2] for n in with_lone["nodes"]]
    assert with_lone["pinned"]["ids"] == ["n2-6"]
    assert with_lone["counts"]["nodes_drawn"] == with_lone["counts"]["nodes_total"] == 6
    # a result that pins nothing and ablated nothing
    plain = explorer_data(make_result())
    assert plain["pinned"] == {"ids": [], "supernodes": []} and plain["interventions"] is None


def pane(html: str) -> str:
    start = html.index('<section class="gx-sub" id="gx-sub"')
    return html[start : html.index("</section>", start)]


def test_the_pane_offers_the_builds_pinned_figure(tmp_path: Path) -> None:
    from reportgen.render.html import render_dossier_page

    result = circuit_result()
    bare = pane(render_dossier(result, tmp_path / "bare").read_text(encoding="utf-8"))
    assert "pinned-column.pdf" not in bare and "case file lines" in bare
    assert "pdflatex FILE.tex" in bare
    for out in (tmp_path / "page", tmp_path / "single"):
        (out / "figures").mkdir(parents=True)
        for name in ("column", "text"):
            for suffix in (".pdf", ".tex"):
                (out / "figures" / f"circuit-case-pinned-{name}{suffix}").write_bytes(b"%x\n")
    html = render_dossier(result, tmp_path / "page").read_text(encoding="utf-8")
    links = re.findall(r'<a href="([^"]+)" download="([^"]+)"', pane(html))
    assert links == [
        (f"figures/circuit-case-pinned-{name}{suffix}", f"circuit-case-pinned-{name}{suffix}")
        for name in ("column", "text")
        for suffix in (".pdf", ".tex")
    ]
    # the same files in the page's downloads
    downloads = html[html.index('<section id="downloads">') :]
    assert all(f'href="{href}"' in downloads for href, _ in links)
    # a page that travels alone: the links open the files embedded in it
    page = render_dossier_page(
        result, tmp_path / "single", single_file=True, embedded_downloads=True
    ).read_text(encoding="utf-8")
    embedded = re.findall(r'href="#(download-\d+)" download="circuit-case-pinned-', pane(page))
    assert len(embedded) == 4
    assert all(f'<script type="application/octet-stream" id="{e}">' in page for e in embedded)
