"""`reportgen graph --format neuronpedia` and the dossier's graph.neuronpedia.json.

Checked two ways against the peer projects: validated against Neuronpedia's own JSON Schema
for graph files (tests/data/neuronpedia-graph-schema.json, vendored under Apache-2.0, see the
NOTICE beside it), and loaded with a re-statement of circuit-tracer's pydantic models
(circuit_tracer/frontend/graph_models.py: Metadata, QParams, Node, Model) plus the
referential checks its viewer relies on (every link's ends are nodes, ids unique)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner
from pydantic import BaseModel
from render_fixtures import hostile_result, make_result
from tiny_models import save_tiny_llama

from reportgen.cli import main
from reportgen.render.html import render_dossier
from reportgen.render.neuronpedia import neuronpedia_from_result

SCHEMA = json.loads(
    (Path(__file__).parent / "data" / "neuronpedia-graph-schema.json").read_text(encoding="utf-8")
)


# circuit-tracer's graph file models (field names, types and defaults as in its
# frontend/graph_models.py; written out here, not imported: circuit-tracer is not a dependency)
class Metadata(BaseModel):
    slug: str
    scan: str
    transcoder_list: list[str]
    prompt_tokens: list[str]
    prompt: str
    node_threshold: float | None = None
    schema_version: int | None = 1


class QParams(BaseModel):
    pinnedIds: list[str]
    supernodes: list[list[str]]
    linkType: str
    clickedId: str
    sg_pos: str


class Node(BaseModel):
    node_id: str
    feature: int
    layer: str
    ctx_idx: int
    feature_type: str
    token_prob: float = 0.0
    is_target_logit: bool = False
    run_idx: int = 0
    reverse_ctx_idx: int = 0
    jsNodeId: str
    clerp: str = ""
    influence: float | None = None
    activation: float | None = None


class Model(BaseModel):
    metadata: Metadata
    qParams: QParams
    nodes: list[Node]
    links: list[dict]


def load_like_the_viewer(data: dict) -> Model:
    jsonschema.validate(data, SCHEMA)
    model = Model.model_validate(data)
    ids = [n.node_id for n in model.nodes]
    assert len(ids) == len(set(ids)), "node ids must be unique"
    js_ids = [n.jsNodeId for n in model.nodes]
    assert len(js_ids) == len(set(js_ids)), "jsNodeIds must be unique"
    known = set(ids)
    for link in model.links:
        assert link["source"] in known and link["target"] in known, link
    n_tokens = len(model.metadata.prompt_tokens)
    assert all(0 <= n.ctx_idx < n_tokens for n in model.nodes)
    assert sum(n.is_target_logit for n in model.nodes) == 1
    return model


def test_dossier_graph_maps_every_node_and_edge() -> None:
    result = make_result()
    graph = result.graph.to_json()
    data = neuronpedia_from_result(result)
    model = load_like_the_viewer(data)
    att = result.attribution
    assert model.metadata.prompt_tokens == att.token_texts
    assert model.metadata.prompt == "".join(att.token_texts)
    assert model.metadata.scan == result.model and model.metadata.slug == result.case_id
    by_id = {n["node_id"]: n for n in data["nodes"]}
    # one embedding node per token, on layer E, with the emb layer's relevance
    emb = [n for n in data["nodes"] if n["feature_type"] == "embedding"]
    assert [n["ctx_idx"] for n in emb] == list(range(len(att.token_ids)))
    assert all(n["layer"] == "E" for n in emb)
    assert [n["relevance"] for n in emb] == graph["node_relevance"][0]
    assert emb[1]["node_id"] == f"E_{att.token_ids[1]}_1"
    # the later node layers in depth order, as residual-stream nodes
    assert data["metadata"]["reportgen_layers"] == {"E": "emb", "0": "0", "1": "0.mid", "2": "1"}
    # every graph edge is a link with its weight, between the mapped nodes
    links = {(k["source"], k["target"]): k["weight"] for k in data["links"]}
    layer_label = {"emb": "E", "0": "0", "0.mid": "1", "1": "2"}
    for e in graph["edges"]:
        if e["source_layer"] == "emb":
            source = f"E_{att.token_ids[e['source']]}_{e['source']}"
        else:
            source = f"{layer_label[e['source_layer']]}_-1_{e['source']}"
        target = f"{layer_label[e['target_layer']]}_-1_{e['target']}"
        assert links[(source, target)] == e["weight"]
        assert by_id[target]["feature_type"] == "residual stream"
        assert by_id[target]["feature"] == -1
    # the logit node: the target token at the last position, fed by the last layer with R
    (logit,) = [n for n in data["nodes"] if n["feature_type"] == "logit"]
    n = len(att.token_ids)
    assert logit["node_id"] == f"4_{att.target.id}_{n - 1}" and logit["is_target_logit"]
    assert logit["token_prob"] == att.target.prob and logit["relevance"] == att.explained
    into_logit = {s: w for (s, t), w in links.items() if t == logit["node_id"]}
    expected = {f"2_-1_{j}": r for j, r in enumerate(graph["node_relevance"][-1]) if r != 0}
    assert into_logit == expected
    assert len(data["links"]) == len(graph["edges"]) + len(expected)
    assert "residual stream" in data["metadata"]["info"]["description"]


def test_hostile_texts_survive_and_validate() -> None:
    data = neuronpedia_from_result(hostile_result())
    load_like_the_viewer(json.loads(json.dumps(data)))
    assert "<script>alert(1)</script>" in data["metadata"]["prompt_tokens"]


def test_dossier_offers_the_download(tmp_path: Path) -> None:
    render_dossier(make_result(), tmp_path)
    path = tmp_path / "graph.neuronpedia.json"
    load_like_the_viewer(json.loads(path.read_text(encoding="utf-8")))
    assert 'href="graph.neuronpedia.json"' in (tmp_path / "index.html").read_text()
    bare = tmp_path / "bare"
    render_dossier(make_result(full=False), bare)
    assert not (bare / "graph.neuronpedia.json").exists()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    return save_tiny_llama(tmp_path_factory.mktemp("tiny-np"))


def test_cli_graph_format_neuronpedia(model_dir: str, tmp_path: Path) -> None:
    flags = ["--model", model_dir, "--prompt", "the capital of france is", "--target",
             "paris", "--contrast", "lyon", "--bos"]  # fmt: skip
    runner = CliRunner()
    plain = runner.invoke(main, ["graph", *flags, "--out", str(tmp_path / "g.json")])
    assert plain.exit_code == 0, plain.output
    out = tmp_path / "np.json"
    result = runner.invoke(main, ["graph", *flags, "--format", "neuronpedia", "--out", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text(encoding="utf-8"))
    model = load_like_the_viewer(data)
    graph = json.loads((tmp_path / "g.json").read_text(encoding="utf-8"))
    assert model.metadata.prompt_tokens[-1] == " is" or model.metadata.prompt_tokens[-1] == "is"
    residual_links = [
        k for k in data["links"] if not k["target"].startswith(f"{len(graph['layers'])}_")
    ]
    assert sorted(k["weight"] for k in residual_links) == sorted(
        e["weight"] for e in graph["edges"]
    )
    # the f reaching the logit node is the last layer's relevance, i.e. the explained value
    (logit,) = [n for n in data["nodes"] if n["feature_type"] == "logit"]
    into = sum(k["weight"] for k in data["links"] if k["target"] == logit["node_id"])
    assert into == pytest.approx(logit["relevance"], rel=1e-4, abs=1e-6)
    bad = runner.invoke(
        main, ["graph", *flags, "--format", "neuronpedia", "--out", str(tmp_path / "x.npz")]
    )
    assert bad.exit_code != 0 and "must end in .json" in bad.output
