"""The interactive parts in a real browser (Playwright driving the system Chromium, no browser
download): the project page's sections and copy button, the dossier's graph explorer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from render_fixtures import hostile_result, make_result

from reportgen.localweb import public_path
from reportgen.project import load_project
from reportgen.render.site import build_site

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
    graph = result.graph.to_json()
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


class Recorder:
    """ASGI wrapper noting (method, path, status) of every answered request: the tests see
    that a foreign page's requests reached the explorer and were refused there."""

    def __init__(self, app) -> None:
        self.app, self.seen = app, []

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def noting(message) -> None:
            if message["type"] == "http.response.start":
                self.seen.append((scope["method"], scope["path"], message["status"]))
            await send(message)

        return await self.app(scope, receive, noting)


def _serve_in_thread(app, port: int):
    import threading
    import time

    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    return server, thread


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def explore_server(tmp_path_factory: pytest.TempPathFactory):
    """`reportgen explore`'s app on a tiny model, served by uvicorn on 127.0.0.1 in a thread."""
    from tiny_models import save_tiny_llama

    from reportgen.explore import create_app
    from reportgen.models import load_model

    with pytest.MonkeyPatch.context() as patch:  # the session's cache (conftest's is per test)
        patch.setenv("REPORTGEN_CACHE", str(tmp_path_factory.getbasetemp() / "reportgen-cache"))
        model_dir = save_tiny_llama(tmp_path_factory.mktemp("tiny-explore-browser"))
        cases = tmp_path_factory.mktemp("explore-browser-cases")
        port = _free_port()
        app = create_app(load_model(model_dir), model=model_dir, cases_dir=cases, port=port)
        recorder = Recorder(app)
        server, thread = _serve_in_thread(recorder, port)
        yield f"http://127.0.0.1:{port}", model_dir, cases, recorder
        server.should_exit = True
        thread.join(timeout=10)
    assert not app.state.explorer.work.exists()  # removed at the app's shutdown


def test_explorer_computes_a_prompt_and_saves_a_case_that_builds(
    browser, explore_server, tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from reportgen.cli import main

    url, model_dir, cases, _ = explore_server
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
        # the embedded dossier's downloads resolve (relative to the view's URL)
        view = page.locator("#ex-view").element_handle().content_frame()
        statuses = view.evaluate(
            "Promise.all([...document.querySelectorAll('#downloads a')]"
            ".map(a => fetch(a.href).then(r => [a.getAttribute('href'), r.status])))"
        )
        assert len(statuses) >= 4 and all(status == 200 for _, status in statuses), statuses
        page.fill("#ex-id", "browser-saved")
        page.fill("#ex-title", "Saved in the browser")
        page.fill("#ex-description", "The tiny model prefers paris.")
        page.click("#ex-save")
        page.wait_for_selector("#ex-saved:not([hidden])")
        path = cases / "browser-saved.toml"
        shown = page.inner_text("#ex-saved").strip()  # the file, its model path shortened
        assert path.is_file() and shown == path.read_text().strip().replace(
            model_dir, public_path(model_dir)
        )
        assert 'description = "The tiny model prefers paris."' in path.read_text()
        assert "reuses this result" in page.inner_text("#ex-saved-path")
        assert errors == []
    finally:
        context.close()
    out = tmp_path / "site"
    built = CliRunner().invoke(main, ["build", str(path), "--out", str(out), "--no-pdf"])
    assert built.exit_code == 0, built.output
    assert "0 computed, 1 from cache" in built.output  # explore's result, not recomputed
    data = json.loads((out / "cases" / "browser-saved" / "data.json").read_text())
    assert data["prefix"] == "the capital" and data["chat"] is True


def test_explorer_shows_progress_with_an_estimate(browser, explore_server, monkeypatch) -> None:
    import threading

    from reportgen import compute

    url, _, _, _ = explore_server
    real, gate = compute.compute_case, threading.Event()

    def gated(case, loaded, *, progress, **kwargs):
        progress("graph", 0, 5)
        progress("graph", 2, 5)
        gate.wait(60)
        return real(case, loaded, progress=progress, **kwargs)

    monkeypatch.setattr(compute, "compute_case", gated)
    context, page, errors = open_page(browser, url + "/")
    try:
        page.fill("#ex-prompt", "list three primary colors")
        page.click("#ex-predict")
        page.wait_for_selector("#ex-topk tbody tr")
        page.fill("#ex-target", "red")
        page.fill("#ex-contrast", "blue")
        page.click("#ex-explain")
        page.wait_for_function(
            "document.getElementById('ex-progress').textContent.includes('graph: layer 2 of 5, ~')",
            timeout=60_000,
        )
        line = page.inner_text("#ex-progress")
        assert " left" in line and "so far" in line and page.locator("#ex-progress").is_visible()
        gate.set()
        page.wait_for_selector("#ex-result:not([hidden])", timeout=120_000)
        assert page.locator("#ex-progress").is_hidden()
        assert errors == []
    finally:
        gate.set()
        context.close()


ATTACK = """<!doctype html><title>evil</title><body><script>
async function attack(base) {
  const body = id => JSON.stringify({prompt: "x", target: "paris", contrast: "lyon", id: id});
  const tries = [
    ["planted-text", {mode: "no-cors", body: body("planted-text")}],
    ["planted-blob", {mode: "no-cors", body: new Blob([body("planted-blob")])}],
    ["planted-form", {mode: "no-cors", body: body("planted-form"),
                      headers: {"Content-Type": "application/x-www-form-urlencoded"}}],
    ["planted-json", {mode: "no-cors", body: body("planted-json"),
                      headers: {"Content-Type": "application/json"}}],
    ["planted-cors", {body: body("planted-cors"),
                      headers: {"Content-Type": "application/json", "X-Reportgen-Token": "guess"}}],
  ];
  const out = {};
  for (const [id, init] of tries) {
    try {
      const r = await fetch(base + "/api/save", {method: "POST", credentials: "include", ...init});
      out[id] = r.type + ":" + r.status;
    } catch (e) { out[id] = "blocked"; }
  }
  // the classic text/plain form whose body is JSON, into a hidden frame
  const frame = document.createElement("iframe"); frame.name = "sink"; document.body.appendChild(frame);
  const form = document.createElement("form");
  form.method = "POST"; form.action = base + "/api/save"; form.enctype = "text/plain"; form.target = "sink";
  const input = document.createElement("input");
  input.name = '{"prompt":"x","target":"paris","contrast":"lyon","id":"planted-post","z":"';
  input.value = '"}';
  form.appendChild(input); document.body.appendChild(form); form.submit();
  await new Promise(done => frame.addEventListener("load", done));
  return out;
}
</script></body>"""


def test_a_page_of_another_origin_cannot_drive_the_explorer(
    browser, explore_server, tmp_path: Path
) -> None:
    """A real Chromium page on another origin (another port of 127.0.0.1: same site, no
    private-network block; and evil.example) posts to /api/save every way a page can without
    the token: no-cors fetches (text/plain, no type, form-urlencoded, JSON), a CORS fetch, a
    text/plain form. The requests reach the explorer, which refuses them: no file is written."""
    import functools
    import http.server
    import threading

    url, _, cases, recorder = explore_server
    (tmp_path / "evil.html").write_text(ATTACK, encoding="utf-8")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    evil = http.server.ThreadingHTTPServer(("127.0.0.1", _free_port()), handler)
    threading.Thread(target=evil.serve_forever, daemon=True).start()
    before = set(cases.iterdir())
    try:
        for origin in (f"http://127.0.0.1:{evil.server_address[1]}", "http://evil.example"):
            recorder.seen.clear()
            context = browser.new_context()
            if origin.endswith("evil.example"):
                context.route(
                    "http://evil.example/**",
                    lambda route: route.fulfill(status=200, content_type="text/html", body=ATTACK),
                )
            page = context.new_page()
            try:
                page.goto(origin + "/evil.html")
                outcome = page.evaluate("base => attack(base)", url)
            finally:
                context.close()
            assert set(cases.iterdir()) == before, (origin, outcome)
            assert not any(path.name.startswith("planted") for path in cases.iterdir())
            assert all(status != 200 for _, _, status in recorder.seen), recorder.seen
            if origin.startswith("http://127.0.0.1"):
                saves = [status for method, path, status in recorder.seen if path == "/api/save"]
                assert len(saves) >= 5 and set(saves) == {403}, recorder.seen
                assert outcome["planted-cors"] == "blocked"  # its preflight got a 403
    finally:
        evil.shutdown()
        evil.server_close()


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


LABEL_SIZES = """() => Array.from(document.querySelectorAll('#gx-canvas text'))
  .filter(t => t.getAttribute('display') !== 'none')
  .map(t => [t.getAttribute('class'), parseFloat(getComputedStyle(t).fontSize) * t.getScreenCTM().a,
             t.getAttribute('transform') || ''])"""


@pytest.mark.parametrize("width", [1280, 390])
def test_explorer_labels_are_legible_and_full_screen_works(browser, site: Path, width) -> None:
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto((site / "cases/case-a/index.html").as_uri())
        page.wait_for_selector("#graph-explorer[data-ready=yes]")
        graph = embedded_graph(page)

        def labels() -> list:
            sizes = page.evaluate(LABEL_SIZES)
            kinds = {k for k, _, _ in sizes}
            # every token column and every layer has its label, at >= 11 px on the screen
            assert kinds == {"gx-label", "gx-layer-label"}
            assert sum(k == "gx-layer-label" for k, _, _ in sizes) == len(graph["layers"])
            assert sum(k == "gx-label" for k, _, _ in sizes) == len(graph["columns"])
            assert min(px for _, px, _ in sizes) >= 11
            return sizes

        sizes = labels()
        # a short case's token labels are level, not rotated
        assert all(t == "" for _, _, t in sizes)
        assert page.get_attribute("#graph-explorer", "data-label-mode") in ("level", "stagger")
        # zooming out keeps the labels' size on the screen
        for _ in range(3):
            page.click("#gx-zoom-out")
        assert min(px for _, px, _ in page.evaluate(LABEL_SIZES)) >= 11
        # full screen: the explorer fills the window; Esc leaves
        before = page.locator("#graph-explorer").bounding_box()
        page.click("#gx-fullscreen")
        page.wait_for_function(
            "document.getElementById('graph-explorer').classList.contains('gx-full')"
        )
        box = page.locator("#graph-explorer").bounding_box()
        assert box["width"] >= width - 1 and box["height"] >= 899
        canvas = page.locator("#gx-canvas").bounding_box()
        assert canvas["height"] > 900 * 0.4
        assert page.get_attribute("#gx-fullscreen", "aria-pressed") == "true"
        labels()
        # the graph works in full screen: a node click selects it
        page.click(".gx-node.output")
        assert page.get_attribute("#graph-explorer", "data-selected") is not None
        page.keyboard.press("Escape")
        page.wait_for_function(
            "!document.getElementById('graph-explorer').classList.contains('gx-full')"
        )
        assert page.evaluate("document.fullscreenElement") is None
        assert page.get_attribute("#gx-fullscreen", "aria-pressed") == "false"
        after = page.locator("#graph-explorer").bounding_box()
        assert after["height"] == pytest.approx(before["height"], abs=2)
        # the button leaves as well
        page.click("#gx-fullscreen")
        page.click("#gx-fullscreen")
        assert not page.evaluate(
            "document.getElementById('graph-explorer').classList.contains('gx-full')"
        )
        assert errors == []
    finally:
        context.close()
