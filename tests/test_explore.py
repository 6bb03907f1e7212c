"""`reportgen explore` through FastAPI's TestClient on a tiny local model: predictions, the
dossier's views computed by the pipeline and cached by configuration, one-line 400s, and
"save as case" writing the case file a person would write, which `reportgen build` builds."""

from __future__ import annotations

import json
import re
import time
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner
from tiny_models import save_tiny_llama

from reportgen.cases import load_case, parse_case
from reportgen.cli import main
from reportgen.localweb import public_path
from reportgen.models import load_model
from reportgen.pipeline import explain
from reportgen.question import PromptSpec, Question

fastapi_testclient = pytest.importorskip("fastapi.testclient")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    return save_tiny_llama(tmp_path_factory.mktemp("tiny-explore"))


PORT = 8765
BASE = f"http://127.0.0.1:{PORT}"


@pytest.fixture(scope="module")
def module_cache(tmp_path_factory: pytest.TempPathFactory):
    """The session's cache (conftest sets it per test; a module's app is made before that)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("REPORTGEN_CACHE", str(tmp_path_factory.getbasetemp() / "reportgen-cache"))
        yield


@pytest.fixture(scope="module")
def app_env(model_dir: str, tmp_path_factory: pytest.TempPathFactory, module_cache):
    from reportgen.explore import create_app

    loaded = load_model(model_dir)
    cases = tmp_path_factory.mktemp("explore-cases")
    app = create_app(loaded, model=model_dir, cases_dir=cases, port=PORT)
    client = fastapi_testclient.TestClient(
        app, base_url=BASE, headers={"X-Reportgen-Token": app.state.token}
    )
    yield client, loaded, cases
    app.state.explorer.close()


CONFIG = {
    "prompt": "the capital of france is",
    "chat": True,
    "prefix": "the capital",
    "bos": None,
    "target": "paris",
    "contrast": "lyon",
    "mode": "logit_diff",
}


def test_page_and_top_k(app_env) -> None:
    client, loaded, _ = app_env
    page = client.get("/")
    assert page.status_code == 200 and 'id="ex-prompt"' in page.text
    assert "<script src=" not in page.text  # its script is inlined: nothing to fetch
    data = client.post("/api/predict", json=CONFIG).json()
    assert len(data["top_k"]) == 10 and [t["rank"] for t in data["top_k"]] == list(range(1, 11))
    probs = [t["prob"] for t in data["top_k"]]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
    tok = loaded.tokenizer
    assert data["n_tokens"] == len(tok.encode(tok.apply_chat_template(
        [{"role": "user", "content": CONFIG["prompt"]}], tokenize=False, add_generation_prompt=True
    ), add_special_tokens=False)) + 2  # fmt: skip


def test_explain_matches_the_pipeline_and_is_cached(app_env) -> None:
    client, loaded, _ = app_env
    first = client.post("/api/explain", json=CONFIG)
    assert first.status_code == 200, first.text
    data = first.json()
    prefix_ids = tuple(loaded.tokenizer.encode(CONFIG["prefix"], add_special_tokens=False))
    direct = explain(
        loaded,
        Question(
            PromptSpec(CONFIG["prompt"], True, CONFIG["prefix"], prefix_ids, None), "paris", "lyon"
        ),
    )
    assert data["explained"] == pytest.approx(direct.explained, rel=1e-6)
    assert data["cached"] is False and data["graph_edges"] > 0
    again = client.post("/api/explain", json=CONFIG).json()
    assert again["key"] == data["key"] and again["cached"] is True
    assert data["view"] == f"/view/{data['key']}/"
    view = client.get(data["view"])
    assert view.status_code == 200
    for section in ('id="heatmap"', 'id="graph-explorer"', 'id="metrics"'):
        assert section in view.text
    other = client.post("/api/explain", json={**CONFIG, "mode": "max_logit", "contrast": None})
    assert other.status_code == 200 and other.json()["key"] != data["key"]
    assert client.get("/view/nope").status_code == 404


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({**CONFIG, "prompt": "   "}, "prompt"),
        ({**CONFIG, "target": "zebra"}, "not in the vocabulary"),
        ({**CONFIG, "contrast": None}, "contrast"),
        ({**CONFIG, "mode": "softmax"}, "mode"),
        ({**CONFIG, "chat": "yes"}, "chat"),
        ({**CONFIG, "prompt": "half a pair \ud800 here"}, "lone surrogate"),
        ({**CONFIG, "surprise": 1}, "unknown field"),
        ([1, 2], "JSON object"),
    ],
)
def test_bad_input_is_a_one_line_400(app_env, body, words) -> None:
    client, _, _ = app_env
    saved = {**body, "id": "never-saved"} if isinstance(body, dict) else body
    for url, payload in (("/api/explain", body), ("/api/save", saved)):
        # json.dumps escapes a lone surrogate as \ud800 (httpx's json= cannot encode it)
        response = client.post(
            url, content=json.dumps(payload), headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 400, response.text
        message = response.json()["error"]
        assert "\n" not in message and len(message) < 300
        assert words in message, message
    broken = client.post(
        "/api/predict", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert broken.status_code == 400 and "not JSON" in broken.json()["error"]


def test_saved_case_equals_the_hand_written_one_and_builds(app_env, model_dir, tmp_path) -> None:
    client, loaded, cases = app_env
    body = {**CONFIG, "id": "saved-case", "title": "Saved from the explorer"}
    saved = client.post("/api/save", json=body)
    assert saved.status_code == 200, saved.text
    path = cases / "saved-case.toml"
    shown = saved.json()["path"]  # the folder's tail, never the whole absolute path
    assert shown.startswith("\u2026/") and shown.endswith(f"/{cases.name}/saved-case.toml")
    assert str(cases.parent) not in shown
    # the file as written, its model path shown as the page shows paths (no absolute path)
    assert saved.json()["toml"] == path.read_text().replace(model_dir, public_path(model_dir))
    assert model_dir in path.read_text() and model_dir not in saved.json()["toml"]
    prefix_ids = loaded.tokenizer.encode("the capital", add_special_tokens=False)
    by_hand = f"""
id = "saved-case"
title = "Saved from the explorer"
model = {json.dumps(model_dir)}
chat = true
prompt = "the capital of france is"
prefix = "the capital"
prefix_ids = {prefix_ids}
target = "paris"
contrast = "lyon"
"""
    assert load_case(path) == parse_case(tomllib.loads(by_hand), str(path))
    again = client.post("/api/save", json=body)
    assert again.status_code == 400 and "exists already" in again.json()["error"]
    bad_id = client.post("/api/save", json={**body, "id": "Bad ID"})
    assert bad_id.status_code == 400 and "id" in bad_id.json()["error"]
    # `reportgen validate` accepts it and `reportgen build` builds it unchanged
    runner = CliRunner()
    assert runner.invoke(main, ["validate", str(path)]).exit_code == 0
    out = tmp_path / "site"
    built = runner.invoke(main, ["build", str(path), "--out", str(out), "--no-pdf"])
    assert built.exit_code == 0, built.output
    result = json.loads((out / "cases" / "saved-case" / "data.json").read_text())
    explained = client.post("/api/explain", json=CONFIG).json()["explained"]
    assert result["attribution"]["explained"] == pytest.approx(explained, rel=1e-6)
    # published unchanged but for the local model path, which a site names by its folder
    published = (out / "cases" / "saved-case" / "saved-case.toml").read_text()
    assert published == path.read_text().replace(model_dir, Path(model_dir).name)


def test_cli_explore_is_registered() -> None:
    result = CliRunner().invoke(main, ["explore", "--help"])
    assert result.exit_code == 0 and "127.0.0.1" in result.output


def test_explain_reports_progress_with_an_estimate(app_env, monkeypatch) -> None:
    """While explaining, /api/progress says the step, how much of it is done, the time left
    and the time so far (the build's StepClock); afterwards it says nothing runs."""
    import threading

    from reportgen import compute

    client, _, _ = app_env
    real, gate, reached = compute.compute_case, threading.Event(), threading.Event()

    def gated(case, loaded, *, progress, **kwargs):
        progress("graph", 0, 4)
        time.sleep(0.05)
        progress("graph", 1, 4)
        reached.set()
        assert gate.wait(60)
        return real(case, loaded, progress=progress, **kwargs)

    monkeypatch.setattr(compute, "compute_case", gated)
    answer: dict = {}
    worker = threading.Thread(
        target=lambda: answer.update(
            response=client.post("/api/explain", json={**CONFIG, "prompt": "progress please"})
        )
    )
    worker.start()
    try:
        assert reached.wait(60)
        status = client.get("/api/progress").json()
        assert status["running"] is True and status["elapsed_s"] > 0
        assert status["line"].startswith("graph: layer 1 of 4, ~") and " left" in status["line"]
        assert "so far" in status["line"]
    finally:
        gate.set()
        worker.join(120)
    assert answer["response"].status_code == 200, answer["response"].text
    assert client.get("/api/progress").json() == {"running": False, "line": "", "elapsed_s": 0.0}


def test_the_views_downloads_work(app_env) -> None:
    client, _, _ = app_env
    data = client.post("/api/explain", json=CONFIG).json()
    view = client.get(data["view"]).text
    hrefs = re.findall(r'<a href="([^"#:]+)" download=', view)
    assert {"data.json", "relevance.csv", "graph.npz", "edges.csv"} <= set(hrefs)
    for href in hrefs:  # relative to the view's URL, as the browser resolves them
        response = client.get(data["view"] + href)
        assert response.status_code == 200 and len(response.content) > 10, href
    numbers = client.get(data["view"] + "data.json").json()
    assert numbers["attribution"]["explained"] == pytest.approx(data["explained"], rel=1e-6)
    for bad in ("index.html", "..%2Fsecret", ".lock", "nope.json"):
        assert client.get(data["view"] + bad).status_code == 404, bad
    assert client.get(f"/view/{'0' * 16}/data.json").status_code == 404
    without_slash = client.get(f"/view/{data['key']}", follow_redirects=False)
    assert without_slash.status_code == 307
    assert without_slash.headers["location"] == data["view"]


def test_a_saved_case_builds_from_explores_result(app_env, tmp_path, monkeypatch) -> None:
    """Saved after explaining, the case is in the result cache under the key `build` computes:
    build computes nothing (compute_case is never called) and publishes explore's numbers
    with the saved id, title, description and case file."""
    from reportgen import compute

    client, _, cases = app_env
    config = {**CONFIG, "prompt": "list three primary colors", "target": "green", "contrast": "red"}
    explained = client.post("/api/explain", json=config).json()
    assert explained["cached"] is False, explained
    body = {**config, "id": "from-explore", "title": "Reused", "description": "It says green."}
    saved = client.post("/api/save", json=body)
    assert saved.status_code == 200 and saved.json()["cached"] is True, saved.text
    path = cases / "from-explore.toml"
    assert tomllib.loads(path.read_text())["description"] == "It says green."
    calls: list[str] = []

    def counting(case, *args, **kwargs):
        calls.append(case.id)
        raise AssertionError("build recomputed a case explore had computed")

    monkeypatch.setattr(compute, "compute_case", counting)
    out = tmp_path / "site"
    built = CliRunner().invoke(main, ["build", str(path), "--out", str(out), "--no-pdf"])
    assert built.exit_code == 0, built.output
    assert calls == [] and "0 computed, 1 from cache" in built.output, built.output
    data = json.loads((out / "cases" / "from-explore" / "data.json").read_text())
    assert data["attribution"]["explained"] == explained["explained"]
    assert (data["case_id"], data["title"], data["description"]) == (
        "from-explore",
        "Reused",
        "It says green.",
    )
    published = (out / "cases" / "from-explore" / "from-explore.toml").read_text()
    original = path.read_text()  # the site's copy names a local model by its folder, no path
    model_line = next(line for line in original.splitlines() if line.startswith("model = "))
    folder = model_line.split('"')[1].rstrip("/").rsplit("/", 1)[-1]
    assert published == original.replace(model_line, f'model = "{folder}"')
    # saved without explaining first: nothing to reuse, build computes it
    fresh = client.post("/api/save", json={**body, "id": "not-explained", "target": "blue"})
    assert fresh.status_code == 200 and fresh.json()["cached"] is False


def test_a_relative_model_path_is_saved_relative_to_the_case_file(
    model_dir, tmp_path, monkeypatch
) -> None:
    """`explore --model ./models/tiny --cases cases` writes ``model = "../models/tiny"`` (a case
    file's model path is read next to the file), so the saved case validates, and builds from
    explore's result; no response shows the absolute folder."""
    import shutil

    from reportgen.explore import create_app

    shutil.copytree(model_dir, tmp_path / "models" / "tiny")
    monkeypatch.chdir(tmp_path)
    app = create_app(
        load_model("./models/tiny"), model="./models/tiny", cases_dir=Path("cases"), port=PORT
    )
    client = fastapi_testclient.TestClient(
        app, base_url=BASE, headers={"X-Reportgen-Token": app.state.token}
    )
    try:
        page = client.get("/").text
        explained = client.post("/api/explain", json=CONFIG)
        view = client.get(explained.json()["view"]).text
        saved = client.post("/api/save", json={**CONFIG, "id": "relative-model"})
        assert saved.status_code == 200 and saved.json()["cached"] is True, saved.text
        assert saved.json()["path"] == "cases/relative-model.toml"
        for text in (page, explained.text, view, saved.text):
            assert str(tmp_path) not in text
    finally:
        app.state.explorer.close()
    path = tmp_path / "cases" / "relative-model.toml"
    assert tomllib.loads(path.read_text())["model"] == "../models/tiny"
    runner = CliRunner()
    assert runner.invoke(main, ["validate", str(path)]).exit_code == 0
    built = runner.invoke(main, ["build", "cases", "--out", "site", "--no-pdf"])
    assert built.exit_code == 0 and "0 computed, 1 from cache" in built.output, built.output


# --- a hypothesis tested live (/api/intervene) and pins kept by "Save as case" ---------------


def test_intervene_equals_the_probe_and_offers_the_graphs_nodes(app_env) -> None:
    from reportgen.pipeline import prepare_question
    from reportgen.probe import Intervention, probe

    client, loaded, _ = app_env
    explained = client.post("/api/explain", json=CONFIG).json()
    layers, tokens, special = explained["layers"], explained["tokens"], explained["special"]
    assert layers[0] == "emb" and len(tokens) == len(special) == explained["n_tokens"]
    assert special[0] is True and special[-1] is False  # BOS; the prefix's last word
    offered = explained["nodes"]
    assert 0 < len(offered) <= 20
    strengths = [abs(n["relevance"]) for n in offered]
    assert strengths == sorted(strengths, reverse=True)
    first = offered[0]
    assert first["id"] == f"n{layers.index(first['layer'])}-{first['position']}"
    assert first["token"] == tokens[first["position"]]

    prefix_ids = tuple(loaded.tokenizer.encode(CONFIG["prefix"], add_special_tokens=False))
    prepared = prepare_question(
        loaded,
        Question(
            PromptSpec(CONFIG["prompt"], True, CONFIG["prefix"], prefix_ids, None), "paris", "lyon"
        ),
    )
    masked = next(i for i, s in enumerate(special) if not s)
    body = {**CONFIG, "ablate": [first["id"], "emb:3", ["0", 4]], "mask": [masked], "tokens": 5}
    answer = client.post("/api/intervene", json=body)
    assert answer.status_code == 200, answer.text
    data = answer.json()
    nodes = ((first["layer"], first["position"]), ("emb", 3), ("0", 4))
    direct = probe(
        loaded.model,
        loaded.tokenizer,
        prepared.inputs.token_ids,
        prepared.objective,
        Intervention(nodes, masked=(masked,)),
        tokens=5,
    )
    assert data["intervention"]["ablate"] == [list(n) for n in nodes]
    assert data["clean"]["f"] == direct.f_clean and data["after"]["f"] == direct.f_after
    assert data["clean"]["f"] == pytest.approx(explained["explained"], rel=1e-4)
    assert data["delta_f"] == direct.f_after - direct.f_clean != 0
    assert [t["id"] for t in data["after"]["top_k"]] == [t.id for t in direct.after.top]
    assert data["after"]["continuation"] == list(direct.after.continuation)
    assert len(data["after"]["continuation"]) <= 5 and data["after"]["text"] == direct.after.text
    # nothing ablated, nothing masked: the clean run, exactly
    nothing = client.post("/api/intervene", json={**CONFIG, "tokens": 5}).json()
    assert nothing["after"] == nothing["clean"] == data["clean"] and nothing["delta_f"] == 0


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"ablate": ["99:1"]}, "cannot ablate layer '99'"),
        ({"ablate": ["0.mid:1"]}, "cannot ablate layer '0.mid'"),
        ({"ablate": ["0:500"]}, "position outside the"),
        ({"ablate": ["zebra"]}, "is not a node"),
        ({"ablate": ["n99-1"]}, "names no layer"),
        ({"ablate": "0:1"}, "must be a list"),
        ({"ablate": ["0:1"], "baseline": "resample"}, "baseline"),
        ({"mask": [0]}, "special token"),
        ({"mask": [500]}, "outside the"),
        ({"mask": ["a"]}, "mask"),
        ({"tokens": 1000}, "tokens"),
        ({"target": None}, "target"),
    ],
)
def test_a_bad_intervention_is_a_one_line_400(app_env, change, words) -> None:
    client, _, _ = app_env
    client.post("/api/explain", json=CONFIG)  # node ids count the explained graph's layers
    response = client.post("/api/intervene", json={**CONFIG, **change})
    assert response.status_code == 400, response.text
    message = response.json()["error"]
    assert "\n" not in message and len(message) < 300 and words in message, message


def test_save_keeps_the_pinned_nodes_and_groups(app_env, tmp_path) -> None:
    client, _, cases = app_env
    explained = client.post("/api/explain", json=CONFIG).json()
    first = explained["nodes"][0]
    pair = [first["layer"], first["position"]]
    typed = [n for n in (["emb", 1], ["0", 2], ["1", 3]) if n != pair][:2]
    body = {
        **CONFIG,
        "id": "pinned-case",
        "pinned": [first["id"], "emb:1"],
        # the explorer's [label, [ids]] and Neuronpedia's [label, id, id, ...]
        "supernodes": [
            ["strongest", [first["id"]]],
            ["typed", *(f"{layer}:{position}" for layer, position in typed)],
        ],
    }
    saved = client.post("/api/save", json=body)
    assert saved.status_code == 200, saved.text
    assert saved.json()["cached"] is False  # the pins add ablations to compute: build does
    graph = tomllib.loads((cases / "pinned-case.toml").read_text())["graph"]
    pinned = [pair, *([["emb", 1]] if pair != ["emb", 1] else [])]
    assert graph["pinned"] == pinned + [n for n in typed if n not in pinned]
    assert graph["supernodes"] == [
        {"label": "strongest", "nodes": [pair]},
        {"label": "typed", "nodes": typed},
    ]
    case = load_case(cases / "pinned-case.toml")
    assert case.graph.pinned == tuple(tuple(n) for n in graph["pinned"])
    assert case.graph.supernodes[1] == ("typed", tuple(tuple(n) for n in typed))
    runner = CliRunner()
    validated = runner.invoke(main, ["validate", str(cases / "pinned-case.toml")])
    assert validated.exit_code == 0, validated.output
    out = tmp_path / "site"
    built = runner.invoke(
        main, ["build", str(cases / "pinned-case.toml"), "--out", str(out), "--no-pdf"]
    )
    assert built.exit_code == 0, built.output
    data = json.loads((out / "cases" / "pinned-case" / "data.json").read_text())
    assert data["graph"]["meta"]["pinned"] == graph["pinned"]
    assert data["interventions"]["pinned"]["nodes"] == graph["pinned"]
    # a bad pin is a one-line 400 and writes nothing
    for change, words in (
        ({"pinned": ["7.mid:1"]}, "not a layer of the explained graph"),
        ({"pinned": ["emb:500"]}, "outside the"),
        ({"supernodes": [["a", "emb:1"], ["b", "emb:1"]]}, "already in"),
        ({"supernodes": [[3, "emb:1"]]}, "label"),
    ):
        bad = client.post("/api/save", json={**CONFIG, "id": "bad-pins", **change})
        message = bad.json()["error"]
        assert bad.status_code == 400 and words in message and "\n" not in message, message
    assert not (cases / "bad-pins.toml").exists()
