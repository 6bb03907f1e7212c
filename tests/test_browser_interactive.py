"""The interactive parts in a real browser (Playwright driving the system Chromium, no browser
download): the project page's sections and copy button, the dossier's graph explorer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from render_fixtures import hostile_result, make_result

from reportgen.project import load_project
from reportgen.site import build_site

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium missing")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]

PROJECT = r'''
[site]
title = "Failures of a tiny model"
subtitle = "Explained with contrastive AttnLRP </script>"
authors = [{name = "A. Author", affiliation = "Lab One", url = "https://a.example"}, {name = "B. Author", affiliation = "Lab Two"}]
abstract = "We explain **wrong tokens**. <img src=x onerror=alert(1)>"
links = [{label = "Code", url = "https://code.example"}, {label = "Method", url = "docs/method.md"}]
bibtex = """@misc{tiny2026,
  title = {Failures of a tiny model},
  author = {Author, A. and Author, B.}
}"""
featured = ["case-a", "hostile-case"]
'''


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("interactive")
    (root / "reportgen.toml").write_text(PROJECT, encoding="utf-8")
    (root / "docs").mkdir()  # the Method link's file, copied into the site
    (root / "docs" / "method.md").write_text("# Method\n", encoding="utf-8")
    project = load_project(root / "reportgen.toml")
    out = root / "site"
    build_site(
        [make_result("case-a"), make_result("case-b", full=False), hostile_result()],
        out,
        site_info=project.site,
        project_file=project.path,
    )
    return out


def open_page(browser, url: str):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("dialog", lambda dialog: (errors.append(f"dialog: {dialog.message}"), dialog.dismiss()))
    page.goto(url)
    return context, page, errors


def test_project_page_sections_and_copy_button(browser, site: Path) -> None:
    context, page, errors = open_page(browser, (site / "index.html").as_uri())
    try:
        context.grant_permissions(["clipboard-read", "clipboard-write"])
        assert page.inner_text("h1") == "Failures of a tiny model"
        assert "Explained with contrastive AttnLRP </script>" in page.inner_text(".subtitle")
        assert page.locator(".author").all_inner_texts() == ["A. Author1", "B. Author2"]
        assert page.locator(".link-button").all_inner_texts() == ["Code", "Method"]
        for section in ("abstract", "featured", "cases", "overview", "citation"):
            assert page.locator(f"section#{section}").is_visible(), section
        assert page.locator("#abstract strong").inner_text() == "wrong tokens"
        assert page.locator("img").count() == 0  # the abstract's raw <img> stayed text
        assert page.locator(".featured-case").count() == 2
        assert page.locator(".featured-case .hm").count() > 5
        assert page.locator("#case-table tbody tr").count() == 3
        page.fill("#case-filter", "case-b")
        assert page.inner_text("#case-count") == "1 shown"
        page.wait_for_function("document.querySelectorAll('#overview svg').length >= 2")
        bibtex = page.inner_text("#bibtex")
        assert bibtex.startswith("@misc{tiny2026,")
        page.click("#copy-bibtex")
        page.wait_for_selector("#copy-bibtex[data-copied]")
        assert page.get_attribute("#copy-bibtex", "data-copied") == "yes"
        assert page.inner_text("#copy-bibtex") == "Copied"
        assert page.evaluate("navigator.clipboard.readText()") == bibtex
        assert errors == []
    finally:
        context.close()


def embedded_graph(page) -> dict:
    return json.loads(page.evaluate("document.getElementById('graph-explorer-data').textContent"))


def expected_incoming(graph: dict, layer: str, position: int) -> list[tuple[str, float]]:
    """The node's incoming edges from the result's graph, strongest first, as (node id, w)."""
    index = {name: i for i, name in enumerate(graph["layers"])}
    edges = [
        (f"n{index[e['source_layer']]}-{e['source']}", e["weight"])
        for e in graph["edges"]
        if e["target_layer"] == layer and e["target"] == position
    ]
    return sorted(edges, key=lambda e: -abs(e[1]))


def test_clicking_a_graph_node_shows_its_incoming_edges(browser, site: Path) -> None:
    result = make_result("case-a")
    graph = result.graph
    context, page, errors = open_page(browser, (site / "cases/case-a/index.html").as_uri())
    try:
        page.wait_for_selector("#graph-explorer[data-ready=yes]")
        n = len(graph["tokens"])
        output = f"n{len(graph['layers']) - 1}-{n - 1}"
        page.click(f"#gx-{output}")
        rows = page.locator("#gx-panel tr.gx-in-row")
        shown = [
            (
                rows.nth(i).get_attribute("data-node"),
                float(rows.nth(i).get_attribute("data-weight")),
            )
            for i in range(rows.count())
        ]
        expected = expected_incoming(graph, graph["layers"][-1], n - 1)
        assert [node for node, _ in shown] == [node for node, _ in expected]
        assert [w for _, w in shown] == pytest.approx([w for _, w in expected], rel=1e-6)
        assert len(shown) == 2
        # for the output node, every edge that leads to it is on a path: all four here
        assert page.locator(".gx-edge.gx-path").count() == len(graph["edges"]) == 4
        highlighted = page.eval_on_selector_all(
            ".gx-edge.gx-in", "els => els.map(e => [e.dataset.source, +e.dataset.weight])"
        )
        assert sorted(map(tuple, highlighted)) == sorted(shown)
        assert page.inner_text("#gx-panel [data-field=layer]") == graph["layers"][-1]
        assert page.inner_text("#gx-panel [data-field=position]") == str(n - 1)
        relevance = graph["node_relevance"][-1][n - 1]
        assert float(page.inner_text("#gx-panel [data-field=relevance]")) == pytest.approx(
            relevance
        )
        # the node at (0.mid, #3): one incoming, one outgoing, a path to the output
        page.click("#gx-n2-3")
        assert page.locator("#gx-panel tr.gx-in-row").get_attribute("data-node") == "n1-2"
        assert page.locator("#gx-panel tr.gx-out-row").get_attribute("data-node") == output
        assert page.locator(".gx-edge.gx-path").count() == 1
        # keyboard: Tab reaches the nodes, Enter selects
        page.focus("#gx-n0-1")
        page.keyboard.press("Tab")
        focused = page.evaluate("document.activeElement.getAttribute('data-node')")
        page.keyboard.press("Enter")
        assert page.get_attribute("#graph-explorer", "data-selected") == focused
        # the weight slider hides weaker edges; the layer range hides layers
        page.eval_on_selector(
            "#gx-weight", "el => { el.value = '0.5'; el.dispatchEvent(new Event('input')); }"
        )
        hidden = page.locator(".gx-edge.gx-hidden").count()
        assert hidden == sum(abs(e["weight"]) < 0.5 for e in graph["edges"])
        page.select_option("#gx-layer-from", "1")
        assert page.locator(".gx-node.gx-hidden").count() == sum(
            1 for node in embedded_graph(page)["nodes"] if node[0] < 1
        )
        # zoom narrows the view box
        before = float(page.get_attribute("#gx-canvas svg", "viewBox").split()[2])
        page.click("#gx-zoom-in")
        assert float(page.get_attribute("#gx-canvas svg", "viewBox").split()[2]) < before
        assert errors == []
    finally:
        context.close()


def test_hostile_dossier_explorer_shows_text(browser, site: Path) -> None:
    context, page, errors = open_page(browser, (site / "cases/hostile-case/index.html").as_uri())
    try:
        page.wait_for_selector("#graph-explorer[data-ready=yes]")
        page.click("#gx-n1-2")
        assert page.inner_text("#gx-panel [data-field=layer]") == "</script>"
        assert "<script>alert(1)</script>" in page.inner_text("#gx-panel tr.gx-in-row")
        assert errors == []
    finally:
        context.close()


@pytest.fixture(scope="module")
def explore_server(tmp_path_factory: pytest.TempPathFactory):
    """`reportgen explore`'s app on a tiny model, served by uvicorn on 127.0.0.1 in a thread."""
    import socket
    import threading
    import time

    import uvicorn
    from tiny_models import save_tiny_llama

    from reportgen.explore import create_app
    from reportgen.models import load_model

    model_dir = save_tiny_llama(tmp_path_factory.mktemp("tiny-explore-browser"))
    cases = tmp_path_factory.mktemp("explore-browser-cases")
    app = create_app(load_model(model_dir), model=model_dir, cases_dir=cases)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", model_dir, cases
    server.should_exit = True
    thread.join(timeout=10)


def test_explorer_computes_a_prompt_and_saves_a_case_that_builds(
    browser, explore_server, tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from reportgen.cli import main

    url, model_dir, cases = explore_server
    context, page, errors = open_page(browser, url + "/")
    try:
        # bad input: the page shows the one-line reason
        page.fill("#ex-prompt", "   ")
        page.click("#ex-predict")
        page.wait_for_selector("#ex-error:not([hidden])")
        assert "prompt" in page.inner_text("#ex-error")
        errors.clear()  # the browser logs the 400 itself
        page.fill("#ex-prompt", "the capital of france is")
        page.check("#ex-chat")
        page.fill("#ex-prefix", "the capital")
        page.click("#ex-predict")
        page.wait_for_selector("#ex-topk tbody tr")
        assert page.locator("#ex-topk tbody tr").count() == 10
        assert page.locator("#ex-error").is_hidden()
        page.fill("#ex-target", "paris")
        page.fill("#ex-contrast", "lyon")
        page.click("#ex-explain")
        page.wait_for_selector("#ex-result:not([hidden])", timeout=120_000)
        assert "logit(target) - logit(contrast)" in page.inner_text("#ex-summary")
        frame = page.frame_locator("#ex-view")
        frame.locator("#graph-explorer[data-ready=yes]").wait_for(timeout=60_000)
        assert frame.locator("#heatmap .hm").count() > 5
        assert frame.locator(".gx-node").count() > 0
        page.fill("#ex-id", "browser-saved")
        page.fill("#ex-title", "Saved in the browser")
        page.click("#ex-save")
        page.wait_for_selector("#ex-saved:not([hidden])")
        path = cases / "browser-saved.toml"
        assert path.is_file() and page.inner_text("#ex-saved").strip() == path.read_text().strip()
        assert errors == []
    finally:
        context.close()
    out = tmp_path / "site"
    built = CliRunner().invoke(main, ["build", str(path), "--out", str(out), "--no-pdf"])
    assert built.exit_code == 0, built.output
    data = json.loads((out / "cases" / "browser-saved" / "data.json").read_text())
    assert data["prefix"] == "the capital" and data["chat"] is True


def test_single_file_dossier_explorer_works(browser, tmp_path: Path) -> None:
    from reportgen.render.html import render_dossier

    path = render_dossier(hostile_result(), tmp_path / "single", single_file=True)
    context, page, errors = open_page(browser, path.as_uri())
    try:
        page.wait_for_selector("#graph-explorer[data-ready=yes]")
        output = page.get_attribute(".gx-node.output", "data-node")
        page.click(".gx-node.output")
        assert page.get_attribute("#graph-explorer", "data-selected") == output
        assert page.locator("#gx-panel tr.gx-in-row").count() == 2
        assert errors == []
    finally:
        context.close()
