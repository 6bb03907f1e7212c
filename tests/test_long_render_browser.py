"""Long dossiers (2k, 10k, 16k tokens of real text) through the real site builder and the real
figure set, checked in headless Chromium (Playwright driving /usr/bin/chromium) and with
pdftotext: every chart rendered, no console error, nothing wider than the viewport, page
weight bounded, the graph explorer drawing the pruned subgraph only, the strongest-token links
landing in the folded heatmap, and a PDF that shows the tokens.

The 2,000-token dossier runs by default (a few seconds); 10k and 16k with the PDF are slow."""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from long_render_fixtures import long_dossier

from reportgen.render import explorer as explorer_mod
from reportgen.render.latex import GRAPH_MAX_POSITIONS, graph_body, render_latex
from reportgen.render.site import build_site
from reportgen.results import CaseResult

CHROMIUM = Path("/usr/bin/chromium")
needs_chromium = pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium missing")
needs_pdf_tools = pytest.mark.skipif(
    not (shutil.which("pdflatex") and shutil.which("pdftotext") and shutil.which("pdfinfo")),
    reason="pdflatex, pdftotext or pdfinfo missing",
)
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
WIDTHS = (1280, 390)  # a desktop window and a phone: nothing may be wider than either
# page weight of the dossier's index.html: the heatmap's tokens are the only part that grows
# with the input (about 80 bytes a token); every big array is in the downloads
BYTES_PER_TOKEN = 110
FIXED_BYTES = 250_000  # charts' specs, explorer data, tables, text


def build(result: CaseResult, out: Path, *, pdf: bool = False) -> Path:
    """The site with one dossier (figures first, as ``reportgen build`` does); its page."""
    if pdf:
        render_latex(result, out / "cases" / result.case_id / "figures")
    build_site([result], out)
    return out / "cases" / result.case_id / "index.html"


def chart_ids(html: str) -> list[str]:
    specs = re.search(
        r'<script type="application/json" id="chart-specs">(.*?)</script>', html, re.S
    )
    assert specs is not None
    return sorted(json.loads(specs.group(1)))


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium missing")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def dossier_2k(tmp_path_factory: pytest.TempPathFactory) -> tuple[CaseResult, Path]:
    result = long_dossier(2000)
    return result, build(result, tmp_path_factory.mktemp("long2k"))


def check_page_weight(result: CaseResult, page: Path) -> str:
    """The page stays within its byte budget and holds no big array inline."""
    html = page.read_text(encoding="utf-8")
    n = len(result.attribution.token_ids)
    assert len(html.encode()) < FIXED_BYTES + BYTES_PER_TOKEN * n
    # every token is in the heatmap exactly once, in order
    ids = [int(m) for m in re.findall(r'id="tok-(\d+)"', html)]
    assert ids == list(range(n))
    # the per-token numbers live in the downloads, not in the chart specs or the explorer data
    specs = html[html.index('id="chart-specs"') :]
    specs = specs[: specs.index("</script>")]
    assert len(specs) < 150_000
    data = json.loads((page.parent / "data.json").read_text(encoding="utf-8"))
    assert len(data["attribution"]["relevance"]) == n
    with open(page.parent / "relevance.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["relevance"]) for r in rows] == result.attribution.relevance
    return html


def listen(page) -> list[str]:
    """The page's uncaught exceptions and console errors, as they come."""
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    return errors


def check_charts_and_width(page, html: str, width: int) -> list[str]:
    """Every chart of the page rendered (an <svg>/<canvas> in each, none failed), charts fit
    their column on a desktop window, and nothing makes the page wider than the window."""
    charts = chart_ids(html)
    page.wait_for_function(
        "n => document.querySelectorAll('.chart svg, .chart canvas, .chart-error').length >= n",
        arg=len(charts),
        timeout=60_000,
    )
    rendered = page.eval_on_selector_all(
        ".chart", "els => els.filter(e => e.querySelector('svg, canvas')).map(e => e.id)"
    )
    assert sorted(rendered) == charts  # every chart rendered, each once
    assert page.locator(".chart-error").count() == 0
    assert "failed to render" not in page.inner_text("body")
    if width >= 1280:  # on a desktop window every chart fits its column unscrolled
        wide = page.eval_on_selector_all(
            ".chart",
            "els => els.filter(e => e.querySelector('svg').getBoundingClientRect().width"
            " > e.clientWidth + 1).map(e => e.id)",
        )
        assert wide == []
    scroll = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert scroll[0] <= scroll[1], f"page {scroll[0]} px wide in a {scroll[1]} px window"
    return rendered


def check_in_browser(browser, result: CaseResult, page_path: Path) -> dict:
    """Open the dossier at each of WIDTHS; assert what a reader must see; return numbers."""
    html = page_path.read_text(encoding="utf-8")
    explorer = explorer_mod.explorer_data(result)
    seen: dict = {}
    for width in WIDTHS:
        context = browser.new_context(viewport={"width": width, "height": 900})
        page = context.new_page()
        errors = listen(page)
        try:
            page.goto(page_path.as_uri())
            rendered = check_charts_and_width(page, html, width)
            page.wait_for_selector("#graph-explorer[data-ready=yes]", timeout=30_000)
            # the graph explorer: the pruned subgraph's nodes only, within the drawing bounds
            nodes = page.eval_on_selector_all(".gx-node", "els => els.map(e => e.dataset.node)")
            assert len(nodes) == explorer["counts"]["nodes_drawn"] <= explorer_mod.MAX_NODES
            graph = result.graph
            for node in nodes:
                layer, pos = (int(v) for v in node[1:].split("-"))
                touched = (
                    (graph.edge_source_layer == layer) & (graph.edge_source == pos)
                ).any() or ((graph.edge_target_layer == layer) & (graph.edge_target == pos)).any()
                assert touched or (layer, pos) == (len(graph.layers) - 1, graph.n_tokens - 1)
            assert page.locator(".gx-edge").count() == explorer["counts"]["edges_drawn"]
            # a strongest-token link: its block opens, the token is marked and on screen
            links = page.locator(".strongest a.hm-link")
            assert links.count() == 20
            folded = page.eval_on_selector_all(
                ".strongest a.hm-link",
                "els => els.map(a => a.getAttribute('href')).filter(h =>"
                " !document.getElementById(h.slice(1)).closest('details').open)",
            )
            # one whose block starts folded when there is one (the 11th to 20th strongest may
            # lie in blocks that are not opened up front)
            link = (
                page.locator(f'.strongest a.hm-link[href="{folded[0]}"]') if folded else links.last
            )
            target = link.get_attribute("href")[1:]
            link.click()
            token = page.locator(f"#{target}")
            assert token.evaluate("el => el.closest('details').open")
            assert "hm-target" in (token.get_attribute("class") or "")
            box = token.bounding_box()
            assert box is not None and box["y"] < 900 and box["y"] + box["height"] > 0  # seen
            position = int(target.split("-")[1])
            title = token.get_attribute("title")
            assert title.startswith(f"#{position} R = ")
            assert float(title.split("R = ")[1].split()[0]) == pytest.approx(
                result.attribution.relevance[position], rel=1e-6
            )
            assert errors == []
            seen[width] = {"charts": len(rendered), "nodes": len(nodes), "folded": len(folded)}
        finally:
            context.close()
    return seen


def test_long_dossier_2k_page_weight(dossier_2k) -> None:
    result, page = dossier_2k
    html = check_page_weight(result, page)
    assert "heatmap-folded" in html  # 2,000 tokens fold into blocks of lines
    assert "<strong>Relevance: strongest tokens and overview.</strong> The 30 tokens" in html
    # the line structure: a newline+indentation token breaks the line and keeps its spaces
    indented = next(
        i for i, t in enumerate(result.attribution.token_texts) if re.fullmatch(r"\n {4,}", t)
    )
    spaces = len(result.attribution.token_texts[indented]) - 1
    assert re.search(rf'id="tok-{indented}"[^>]*>↵<br> {{{spaces}}}</span>', html)


@needs_chromium
def test_long_dossier_2k_in_the_browser(browser, dossier_2k) -> None:
    result, page = dossier_2k
    seen = check_in_browser(browser, result, page)
    assert (
        seen[1280]["charts"] == 7
    )  # relevance, segments, layers, metrics, faithfulness, 2 x comparison


def test_long_graph_figure_is_a_readable_subgraph() -> None:
    result = long_dossier(10_000)
    body = graph_body(result)
    labels = re.findall(r"anchor=east,font=\\tiny\\ttfamily,text=rgaxis\] at \(-0\.3,", body)
    assert len(labels) == GRAPH_MAX_POSITIONS  # tokens as rows, the heaviest 60 positions
    assert "rotate=60" not in body  # horizontal labels
    assert body.count("rotate=90") == len(result.graph.layers)  # one column per layer
    # labels in the decoded text the heatmap shows, not the graph's "Ġself" / "ĊĠĠĠ"
    assert any(t.startswith("Ġ") for t in result.graph.tokens)
    assert "U+0120" not in body and "U+010A" not in body  # Ġ and Ċ, set as code-point boxes


@needs_pdf_tools
def test_pdflatex_sets_every_kind_of_token_text(tmp_path: Path) -> None:
    """Backslashes, braces, TeX specials, every C0 control character, DEL, C1, bidi
    overrides, zero-width characters, combining marks, U+FFFD, CJK and emoji as tokens."""
    from render_fixtures import make_result

    texts = ["<s>", "\\", "{", "}", "%", "#", "$", "&", "~", "^", "_", "\\par", "\\end{document}"]
    texts += [chr(c) for c in range(0x20) if c != 0x0A] + ["\x7f", "\x85", "\x9b"]
    texts += ["\u202e", "\u200b", "e\u0301", "\ufffd", "\u4e2d", "\U0001f600", "\n  ", "end"]
    texts += ["```", "python", "='", "s", "'"]
    result = make_result(
        texts=texts,
        relevance=[0.0] + [0.01 * (i % 7 - 3) for i in range(1, len(texts))],
        special=[i == 0 for i in range(len(texts))],
    )
    pdf = render_latex(result, tmp_path)
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True).stdout
    for shown in ("U+0007", "U+001B", "U+202E", "U+FFFD", "end{document}", "%", "#"):
        assert shown in text
    assert "```" in text and "='" in text  # code's quotes as typed, not typographic ‘ ’


@needs_chromium
def test_long_site_index_in_the_browser(browser, dossier_2k) -> None:
    index = dossier_2k[1].parents[2] / "index.html"
    for width in WIDTHS:
        context = browser.new_context(viewport={"width": width, "height": 900})
        page = context.new_page()
        errors = listen(page)
        try:
            page.goto(index.as_uri())
            # benchmarks, models, comparison + the study charts (patterns, profiles, persistence)
            assert len(check_charts_and_width(page, index.read_text(encoding="utf-8"), width)) == 6
            assert errors == []
        finally:
            context.close()


@pytest.mark.slow
@needs_chromium
@needs_pdf_tools
@pytest.mark.parametrize("n_tokens", [10_000, 16_000])
def test_long_dossier_with_pdf(browser, tmp_path: Path, n_tokens: int) -> None:
    result = long_dossier(n_tokens)
    page = build(result, tmp_path, pdf=True)
    check_page_weight(result, page)
    assert page.stat().st_size < 2_500_000  # a few MB at most, even at 16k tokens
    seen = check_in_browser(browser, result, page)
    assert seen[1280]["folded"] > 0  # a link into a folded block was followed and opened it
    pdf = page.parent / "figures" / f"{result.case_id}.pdf"
    assert pdf.is_file()
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True).stdout
    pages = int(re.search(r"Pages:\s+(\d+)", info).group(1))
    assert pages > n_tokens / 500  # the heatmap runs over pages
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True).stdout
    # the hostile paragraph at the start, set as text (pdftotext puts a space between boxes)
    for shown in ("section", "etc", "U+0007", "U+001B", "caf", "%", "#", "$", "\\", "{", "}"):
        assert shown in text
    # the document's words run through to the last heatmap page, the question after it
    assert text.count("ArgumentParser") + text.count("Argument Parser") > 3
    assert "Which method of Argument Parser" in text or "Which method of ArgumentParser" in text
    assert "Attribution graph (the pruned subgraph; the 60 token positions" in text
    assert "Relevance: strongest tokens and overview. The 30 tokens" in text


def test_failure_reason_keeps_small_shares_readable() -> None:
    from reportgen.render.words import failure_reason

    pattern = long_dossier(10_000).faithfulness.failure_pattern
    assert pattern.token_share == pytest.approx(20 / 9_997)
    reason = failure_reason(pattern)
    assert "though they are 0.2% of the tokens" in reason  # not "0%"
