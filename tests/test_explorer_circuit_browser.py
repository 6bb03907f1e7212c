"""The graph explorer's pinned subgraph in a real browser (Playwright driving the system
Chromium): pin, group, label, the view kept in the link (file://, a site under a sub-path, a
single-file dossier), and the exports: JSON with Neuronpedia's qParams, TikZ that pdflatex
compiles without shell escape at a column's and the text's width."""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import subprocess
import threading
import tomllib
from pathlib import Path
from urllib.parse import unquote

import pytest
import test_browser_interactive
from render_fixtures import circuit_result, hostile_result

from reportgen.render.site import build_site

browser = test_browser_interactive.browser  # the same Chromium fixture
pytestmark = test_browser_interactive.pytestmark  # skipped without /usr/bin/chromium

CASE = "circuit-case"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("circuit") / "site"
    build_site([circuit_result(CASE), hostile_result()], out)
    return out


def open_page(browser, url: str, width: int = 1280, touch: bool = False):
    context = browser.new_context(
        viewport={"width": width, "height": 900}, accept_downloads=True, has_touch=touch
    )
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("dialog", lambda dialog: (errors.append(f"dialog: {dialog.message}"), dialog.dismiss()))
    page.goto(url)
    page.wait_for_selector("#graph-explorer[data-ready=yes]")
    return context, page, errors


def view(page) -> dict:
    """Everything the link must bring back, as the page shows it."""
    return {
        "pinned": page.get_attribute("#graph-explorer", "data-pinned"),
        "selected": page.get_attribute("#graph-explorer", "data-selected"),
        "groups": page.eval_on_selector_all(
            "#gx-units li.gx-unit-group",
            "els => els.map(e => [e.querySelector('input.gx-label-input').value, e.dataset.members])",
        ),
        "weight": page.input_value("#gx-weight"),
        "layers": [page.input_value("#gx-layer-from"), page.input_value("#gx-layer-to")],
        "tokens": [page.input_value("#gx-token-from"), page.input_value("#gx-token-to")],
        "hidden_edges": page.locator(".gx-edge.gx-hidden").count(),
        "hidden_nodes": page.locator(".gx-node.gx-hidden").count(),
    }


def view_box(page) -> list[float]:
    return [float(v) for v in page.get_attribute("#gx-canvas svg", "viewBox").split()]


def fragment(page) -> dict[str, str]:
    """The explorer's fragment as a dict (after the '#graph:' prefix)."""
    hash_ = page.evaluate("location.hash")
    assert hash_.startswith("#graph:"), hash_
    return dict(part.split("=", 1) for part in hash_[len("#graph:") :].split("&"))


def pin_and_group(page) -> None:
    """Pin four nodes three ways, then group them into two labelled supernodes."""
    page.click("#gx-clear-pins")
    assert page.get_attribute("#graph-explorer", "data-pinned") == ""
    page.click("#gx-n0-0", modifiers=["Control"])  # Ctrl-click (Cmd on a Mac)
    page.click("#gx-n0-1", modifiers=["Meta"])
    page.focus("#gx-n1-2")
    page.keyboard.press("p")  # the keyboard
    page.click("#gx-n3-8")  # a tap, then the panel's button (a phone)
    page.click("#gx-pin")
    assert page.get_attribute("#gx-pin", "aria-pressed") == "true"
    assert page.get_attribute("#graph-explorer", "data-pinned") == "n0-0,n0-1,n1-2,n3-8"
    for label, nodes in (("subject A", ["n0-0", "n0-1"]), ("B & {$x$} </b>", ["n1-2", "n3-8"])):
        for node in nodes:
            page.check(f'#gx-units li[data-node="{node}"] input.gx-tick')
        page.click("#gx-group")
        # the new supernode's label field has the focus: type its label
        assert page.evaluate("document.activeElement.classList.contains('gx-label-input')")
        page.keyboard.press("Control+a")
        page.keyboard.type(label)
        page.keyboard.press("Enter")
        assert page.evaluate("document.activeElement.value") == label  # still in its field
        page.evaluate("document.activeElement.blur()")


def test_pin_group_label_and_reload_from_the_link(browser, site: Path) -> None:
    url = (site / "cases" / CASE / "index.html").as_uri()
    context, page, errors = open_page(browser, url)
    try:
        graph = circuit_result(CASE).graph
        rel = graph.node_relevance
        # the page opens on the case file's pinned subgraph, and writes no link by itself
        assert page.evaluate("location.hash") == ""
        entries = page.evaluate("history.length")
        assert page.get_attribute("#graph-explorer", "data-pinned") == "n0-1,n1-2,n3-8,n0-0"
        subject = page.locator('#gx-units li.gx-unit-group[data-members="n0-1,n0-0"]')
        assert subject.locator("input.gx-label-input").input_value() == "subject"
        total = float(subject.locator("[data-field=relevance]").get_attribute("data-value"))
        assert total == pytest.approx(rel[0, 1] + rel[0, 0])
        # the build's ablations: the supernode, a lone node, the whole pinned set
        assert subject.locator("[data-field=ablation]").get_attribute("data-f") == "0.1875"
        lone = page.locator('#gx-units li[data-node="n3-8"] [data-field=ablation]')
        assert lone.get_attribute("data-f") == "-0.625"
        assert "f ablated -0.625, Δf +1.875" in lone.inner_text()
        assert "ablated these 4 nodes at once: f ablated -0.5, Δf +1.75" in page.inner_text(
            "#gx-sub-ablation"
        )
        page.click("#gx-n0-1")
        assert "Ablated alone: f ablated +0.375, Δf +0.875" in page.inner_text("#gx-panel")

        pin_and_group(page)
        assert page.locator("#gx-units li.gx-unit-group").count() == 2
        b_sum = page.locator('li.gx-unit-group[data-members="n1-2,n3-8"] [data-field=relevance]')
        assert float(b_sum.get_attribute("data-value")) == pytest.approx(rel[1, 2] + rel[3, 8])
        # the edges between the groups sum the graph's edges: emb:1 -> 0:2 (0.8) and
        # emb:0 -> 1:8 (-0.6) both run from "subject A" to "B"
        rows = page.eval_on_selector_all(
            "#gx-unit-edges tr.gx-unit-edge",
            "els => els.map(e => [e.dataset.source, e.dataset.target, +e.dataset.weight])",
        )
        assert len(rows) == 1 and rows[0][:2] == ["subject A", "B & {$x$} </b>"]
        assert rows[0][2] == pytest.approx(0.8 - 0.6)
        # the figure preview draws the two supernodes with their labels and the one edge
        assert page.eval_on_selector_all(
            "#gx-sub-figure .gx-sub-unit", "els => els.map(e => e.dataset.label)"
        ) == ["subject A", "B & {$x$} </b>"]
        assert page.locator("#gx-sub-figure .gx-sub-edge").count() == 1
        # a selected node, the filters and a zoom
        page.click("#gx-n2-3")
        page.eval_on_selector(
            "#gx-weight", "el => { el.value = '0.1'; el.dispatchEvent(new Event('input')); }"
        )
        page.select_option("#gx-layer-from", "1")
        page.click("#gx-zoom-in")
        page.click("#gx-zoom-in")
        page.wait_for_function("location.hash.indexOf('zoom=') > 0")
        keys = fragment(page)
        assert keys["pinnedIds"] == "n0-0,n0-1,n1-2,n3-8"
        assert json.loads(unquote(keys["supernodes"])) == [
            ["subject A", "n0-0", "n0-1"],
            ["B & {$x$} </b>", "n1-2", "n3-8"],
        ]
        assert keys["clickedId"] == "n2-3" and keys["edgeThreshold"] == "0.1"
        assert keys["layers"] == "1-3" and "tokens" not in keys  # the default range is left out
        assert float(keys["zoom"]) == pytest.approx(1.3**2, rel=1e-3)
        assert page.evaluate("history.length") == entries  # replaceState: no entry per change
        before, box = view(page), view_box(page)
        assert before["hidden_edges"] == 3  # two from the hidden emb layer, one under 0.1
        link = page.evaluate("location.href")
        assert link.startswith(url + "#graph:")

        # the link, opened in a new browser context, shows the same view
        again, page2, errors2 = open_page(browser, link)
        try:
            assert view(page2) == before
            assert view_box(page2) == pytest.approx(box, rel=1e-3, abs=0.5)
            assert page2.evaluate("location.href") == link
            assert errors2 == []
        finally:
            again.close()

        # the page's own anchors still work, and leave the explorer alone
        page.click('nav.toc a[href="#metrics"]')
        assert page.evaluate("location.hash") == "#metrics"
        assert view(page) == before
        page.focus("#gx-n2-3")
        page.keyboard.press("p")
        page.wait_for_function("location.hash.indexOf('#graph:pinnedIds=') === 0")
        assert fragment(page)["pinnedIds"] == "n0-0,n0-1,n1-2,n3-8,n2-3"
        assert errors == []
    finally:
        context.close()
    # a section link opens its section (the explorer shows the case's pins, writes nothing)
    context, page, errors = open_page(browser, url + "#faithfulness")
    try:
        assert page.evaluate("location.hash") == "#faithfulness"
        assert (
            abs(
                page.evaluate("document.getElementById('faithfulness').getBoundingClientRect().top")
            )
            < 5
        )
        assert page.get_attribute("#graph-explorer", "data-pinned") == "n0-1,n1-2,n3-8,n0-0"
        # a resize or full screen fits the graph again, and writes no link of its own
        page.set_viewport_size({"width": 700, "height": 800})
        page.click("#gx-fullscreen")
        page.click("#gx-fullscreen")
        page.wait_for_timeout(400)
        assert page.evaluate("location.hash") == "#faithfulness"
        assert errors == []
    finally:
        context.close()


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # noqa: D102
        pass


def test_a_link_opens_the_same_view_under_a_sub_path(browser, site: Path, tmp_path) -> None:
    """A site published under a sub-path (GitHub Pages: /<repo>/...), its page reached as a
    folder: the link keeps the path, and a folder URL without its slash (redirected) keeps the
    fragment."""
    root = tmp_path / "www"
    shutil.copytree(site, root / "my-project" / "site")
    (root / "favicon.ico").write_bytes(b"")  # what a browser asks a server for, not the page
    handler = functools.partial(Quiet, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/my-project/site/cases/{CASE}"
    try:
        context, page, errors = open_page(browser, base + "/")
        try:
            pin_and_group(page)
            page.click("#gx-n2-3")
            page.click("#gx-zoom-out")
            page.wait_for_function("location.hash.indexOf('zoom=') > 0")
            assert page.evaluate("location.pathname") == f"/my-project/site/cases/{CASE}/"
            before, box, link = view(page), view_box(page), page.evaluate("location.href")
            assert errors == []
        finally:
            context.close()
        hash_ = link[link.index("#") :]
        for url in (link, base + hash_):  # the folder, and the folder without its slash
            context, page, errors = open_page(browser, url)
            try:
                assert page.evaluate("location.href") == link
                assert view(page) == before
                assert view_box(page) == pytest.approx(box, rel=1e-3, abs=0.5)
                assert errors == []
            finally:
                context.close()
    finally:
        server.shutdown()
        server.server_close()


def test_a_single_file_dossier_keeps_its_view_in_the_link(browser, tmp_path: Path) -> None:
    """`reportgen run --single-file`: the page carries the explorer data and scripts inline."""
    from reportgen.publish import write_single_file

    out = tmp_path / "dossier.html"
    write_single_file(circuit_result(CASE), out, pdf=False, use_cache=False)
    assert not (tmp_path / "assets").exists()
    context, page, errors = open_page(browser, out.as_uri())
    try:
        assert page.get_attribute("#graph-explorer", "data-pinned") == "n0-1,n1-2,n3-8,n0-0"
        pin_and_group(page)
        page.click("#gx-n2-3")
        page.wait_for_function("location.hash.indexOf('clickedId=n2-3') > 0")
        before, link = view(page), page.evaluate("location.href")
        # an embedded download's link does not touch the view in the address bar
        with page.expect_download() as saved:
            page.click('#downloads a[download="data.json"]')
        assert json.loads(Path(saved.value.path()).read_text())["case_id"] == CASE
        assert page.evaluate("location.href") == link
        assert errors == []
    finally:
        context.close()
    context, page, errors = open_page(browser, link)
    try:
        assert view(page) == before
        assert errors == []
    finally:
        context.close()


def neuronpedia_ids(site: Path) -> dict[tuple[str, int], str]:
    """(layer, position) -> node_id in the dossier's own graph.neuronpedia.json."""
    data = json.loads((site / "cases" / CASE / "graph.neuronpedia.json").read_text())
    return {(n["reportgen_layer"], n["ctx_idx"]): n["node_id"] for n in data["nodes"]}


def compile_pdf(tex: Path) -> Path:
    proc = subprocess.run(
        ["pdflatex", "-no-shell-escape", "-interaction=nonstopmode", "-halt-on-error", tex.name],
        cwd=tex.parent,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:]
    return tex.with_suffix(".pdf")


def page_width_pt(pdf: Path) -> float:
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
    size = next(line for line in info.splitlines() if line.startswith("Page size"))
    return float(size.split(":")[1].split("x")[0])


def pdf_text(pdf: Path) -> str:
    return subprocess.run(
        ["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout


needs_tex = pytest.mark.skipif(
    not all(shutil.which(tool) for tool in ("pdflatex", "pdfinfo", "pdftotext")),
    reason="needs pdflatex, pdfinfo and pdftotext",
)


@needs_tex
def test_export_json_and_tikz(browser, site: Path, tmp_path: Path) -> None:
    context, page, errors = open_page(browser, (site / "cases" / CASE / "index.html").as_uri())
    try:
        pin_and_group(page)
        page.click("#gx-n2-3")
        with page.expect_download() as saved:
            page.click("#gx-export-json")
        assert saved.value.suggested_filename == f"{CASE}-subgraph.json"
        data = json.loads(Path(saved.value.path()).read_text(encoding="utf-8"))
        np_id = neuronpedia_ids(site)
        ours = {"n0-0": ("emb", 0), "n0-1": ("emb", 1), "n1-2": ("0", 2), "n3-8": ("1", 8)}
        order = ["n0-0", "n0-1", "n1-2", "n3-8"]
        # qParams as Neuronpedia reads them: the ids of the dossier's graph.neuronpedia.json
        assert data["qParams"]["pinnedIds"] == [np_id[ours[n]] for n in order]
        assert data["qParams"]["pinnedIds"][0] == "E_1_0"  # E_<token id>_<position>
        assert data["qParams"]["supernodes"] == [
            ["subject A", np_id[("emb", 0)], np_id[("emb", 1)]],
            ["B & {$x$} </b>", np_id[("0", 2)], np_id[("1", 8)]],
        ]
        assert data["qParams"]["clickedId"] == np_id[("0.mid", 3)]
        assert data["reportgen"]["pinnedIds"] == order
        assert data["reportgen"]["link"] == page.evaluate("location.href")
        # nodes with their relevance and the build's ablation where there is one
        graph = circuit_result(CASE).graph
        nodes = {n["reportgen_id"]: n for n in data["nodes"]}
        assert nodes["n3-8"]["relevance"] == pytest.approx(float(graph.node_relevance[3, 8]))
        assert nodes["n3-8"]["f_ablated"] == -0.625
        assert nodes["n3-8"]["delta_f"] == pytest.approx(1.875)
        assert nodes["n0-0"]["supernode"] == "subject A" and "f_ablated" not in nodes["n0-0"]
        # the graph's edges between pinned nodes, and their sums between the drawn units
        links = sorted((link["source"], link["target"], link["weight"]) for link in data["links"])
        assert links == sorted(
            [
                (np_id[("emb", 1)], np_id[("0", 2)], 0.8),
                (np_id[("emb", 0)], np_id[("1", 8)], -0.6),
            ]
        )
        (unit,) = data["unit_links"]
        assert unit["source"] == "supernode:subject A"
        assert unit["target"] == "supernode:B & {$x$} </b>"
        assert unit["weight"] == pytest.approx(0.2)
        assert data["supernodes"][0]["relevance"] == pytest.approx(
            float(graph.node_relevance[0, 0] + graph.node_relevance[0, 1])
        )

        # TikZ at both widths: compiles without shell escape, exactly that wide, labelled
        for name, inches in (("column", 3.25), ("text", 6.75)):
            with page.expect_download() as saved:
                page.click(f"#gx-export-tex-{name}")
            tex = tmp_path / saved.value.suggested_filename
            assert tex.name == f"{CASE}-subgraph-{name}.tex"
            saved.value.save_as(tex)
            assert "pdflatex" in page.inner_text("#gx-export-note")
            pdf = compile_pdf(tex)
            assert page_width_pt(pdf) == pytest.approx(inches * 72, abs=0.05)
            text = pdf_text(pdf)
            for label in ("subject A", "B & {$x$} </b>", "layer 0", "layer 1", "emb", "ΣR = +2.7"):
                assert label in text, (label, text)

        # the case file lines: what the build needs to draw the same figure
        page.click("#gx-export-toml")
        lines = page.inner_text("#gx-toml")
        table = tomllib.loads(lines)["graph"]
        assert table["pinned"] == [["emb", 0], ["emb", 1], ["0", 2], ["1", 8]]
        assert table["supernodes"] == [
            {"label": "subject A", "nodes": [["emb", 0], ["emb", 1]]},
            {"label": "B & {$x$} </b>", "nodes": [["0", 2], ["1", 8]]},
        ]
        assert errors == []
    finally:
        context.close()


@needs_tex
def test_hostile_labels_from_a_link_stay_text_and_compile(
    browser, site: Path, tmp_path: Path
) -> None:
    """A link's labels and the tokens are untrusted: shown as text, escaped in the TikZ."""
    label = r'\write18{touch pwned} $x$ & {#} % ~ <img src=x onerror=alert(1)> "'
    supernodes = json.dumps([[label, "n0-1", "n1-2"]])
    from urllib.parse import quote

    url = (site / "cases" / "hostile-case" / "index.html").as_uri()
    link = f"{url}#graph:pinnedIds=n0-1,n1-2,n2-3,n3-11,n9-9&supernodes={quote(supernodes)}"
    context, page, errors = open_page(browser, link)
    try:
        assert page.get_attribute("#graph-explorer", "data-pinned") == "n0-1,n1-2,n2-3,n3-11"
        assert "1 node of the link is not drawn" in page.inner_text(
            "#gx-export-note"
        )  # n9-9 is no node
        assert page.input_value("input.gx-label-input") == label
        assert page.locator("#graph-explorer img").count() == 0
        with page.expect_download() as saved:
            page.click("#gx-export-tex-column")
        tex = tmp_path / "hostile.tex"
        saved.value.save_as(tex)
        source = tex.read_text(encoding="utf-8")
        assert r"\write18" not in source and r"\textbackslash{}write18" in source
        pdf = compile_pdf(tex)
        assert not (tmp_path / "pwned").exists()
        text = pdf_text(pdf)
        assert label in text and "layer </script>" in text  # printed as typed
        # a token label (turned 45 degrees, which pdftotext reads out of order), escaped
        assert r"1\ {<}script{>}alert(1){<}/script{>}" in source
        assert page_width_pt(pdf) == pytest.approx(3.25 * 72, abs=0.05)
        assert errors == []
    finally:
        context.close()


def test_pinning_on_a_phone(browser, site: Path) -> None:
    context, page, errors = open_page(
        browser, (site / "cases" / CASE / "index.html").as_uri(), width=390, touch=True
    )
    try:
        page.tap("#gx-clear-pins")
        page.tap("#gx-n2-3")
        page.tap("#gx-pin")
        assert page.get_attribute("#graph-explorer", "data-pinned") == "n2-3"
        assert page.inner_text("#gx-pin") == "Unpin"
        # nothing sticks out of a 390 px screen, and the buttons are big enough to tap
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        heights = page.eval_on_selector_all(
            "#gx-sub button:not(.gx-goto), #gx-pin", "els => els.map(e => e.offsetHeight)"
        )
        assert min(heights) >= 30
        page.tap("#gx-pin")
        assert page.get_attribute("#graph-explorer", "data-pinned") == ""
        assert errors == []
    finally:
        context.close()
