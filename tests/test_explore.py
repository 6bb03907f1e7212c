"""`reportgen explore` through FastAPI's TestClient on a tiny local model: predictions, the
dossier's views computed by the pipeline and cached by configuration, one-line 400s, and
"save as case" writing the case file a person would write, which `reportgen build` builds."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner
from tiny_models import save_tiny_llama

from reportgen.cases import load_case, parse_case
from reportgen.cli import main
from reportgen.inputs import PromptSpec
from reportgen.models import load_model
from reportgen.pipeline import Question, explain

fastapi_testclient = pytest.importorskip("fastapi.testclient")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    return save_tiny_llama(tmp_path_factory.mktemp("tiny-explore"))


@pytest.fixture(scope="module")
def app_env(model_dir: str, tmp_path_factory: pytest.TempPathFactory):
    from reportgen.explore import create_app

    loaded = load_model(model_dir)
    cases = tmp_path_factory.mktemp("explore-cases")
    app = create_app(loaded, model=model_dir, cases_dir=cases)
    return fastapi_testclient.TestClient(app), loaded, cases


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
    path = Path(saved.json()["path"])
    assert path == cases / "saved-case.toml" and path.read_text() == saved.json()["toml"]
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
