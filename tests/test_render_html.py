"""The web dossier and the site index: escaping, determinism, colours, chart specs, files."""

from __future__ import annotations

import csv
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from render_fixtures import hostile_result, make_result, sample_result

from reportgen.render import charts
from reportgen.render.colors import (
    NEGATIVE,
    POSITIVE,
    SPECIAL_BG,
    normalisation,
    token_color,
)
from reportgen.render.html import render_dossier, script_json
from reportgen.render.site import build_site
from reportgen.render.tokens import token_cells, visible_text
from reportgen.results import CaseResult


class _Collector(HTMLParser):
    """Parses a page strictly enough to find unbalanced tags and collect what tests need."""

    VOID = {"meta", "link", "br", "input", "img", "hr"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self.attrs: list[tuple[str, dict[str, str | None]]] = []
        self.ids: list[str] = []
        self.titles: dict[str, str] = {}
        self.styles: dict[str, str] = {}
        self.classes: dict[str, str] = {}
        self._script: dict[str, str | None] | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.attrs.append((tag, a))
        if a.get("id"):
            self.ids.append(a["id"] or "")
            self.titles[a["id"] or ""] = a.get("title") or ""
            self.styles[a["id"] or ""] = a.get("style") or ""
            self.classes[a["id"] or ""] = a.get("class") or ""
        if tag == "script":
            self._script, self._text = a, []
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, f"unbalanced </{tag}> in {self.stack[-3:]}"
        self.stack.pop()
        if tag == "script" and self._script is not None:
            self.scripts.append((self._script, "".join(self._text)))
            self._script = None

    def handle_data(self, data: str) -> None:
        if self._script is not None:
            self._text.append(data)


def parse(html: str) -> _Collector:
    parser = _Collector()
    parser.feed(html)
    parser.close()
    assert parser.stack == [], f"unclosed tags: {parser.stack}"
    return parser


def chart_specs(page: _Collector) -> dict:
    (text,) = [t for a, t in page.scripts if a.get("id") == "chart-specs"]
    return json.loads(text)


@pytest.fixture(scope="module")
def hostile_page(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("hostile")
    path = render_dossier(hostile_result(), out)
    return path, path.read_text(encoding="utf-8")


# --- escaping ---------------------------------------------------------------------------------


def test_hostile_strings_are_escaped(hostile_page: tuple[Path, str]) -> None:
    _, html = hostile_page
    assert "<script>alert" not in html
    assert "</textarea>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # shown as text
    assert "&lt;/textarea&gt;" in html
    assert "\\input{/etc/passwd}" in html and "\\write18{rm -rf x}" in html
    assert "😀" in html and "中文" in html
    page = parse(html)
    # only our own scripts: the graph explorer's data, the runtime link, the specs, the embed
    # call, the graph explorer, the token links
    assert [a.get("id") or a.get("src") for a, _ in page.scripts] == [
        "graph-explorer-data",
        "../assets/vega-bundle.js",
        "chart-specs",
        None,
        "../assets/explorer-export.js",
        "../assets/explorer-pins.js",
        "../assets/explorer.js",
        None,
    ]


def test_script_json_cannot_close_its_element() -> None:
    data = {"x": "</script><script>alert(1)</script> <!-- & \u2028"}
    text = str(script_json(data))
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text) == data


def test_chart_specs_survive_embedding(hostile_page: tuple[Path, str]) -> None:
    specs = chart_specs(parse(hostile_page[1]))
    tokens = [v["token"] for v in specs["chart-relevance"]["data"]["values"]]
    assert "</script>" in tokens and "<!--" in tokens


def test_no_network_references(hostile_page: tuple[Path, str], tmp_path: Path) -> None:
    pages = [hostile_page[1]]
    pages.append(render_dossier(make_result(), tmp_path / "single", single_file=True).read_text())
    for html in pages:
        for _, attrs in parse(html).attrs:
            for key in ("src", "href"):
                assert not re.match(r"\s*(https?:)?//", attrs.get(key) or ""), attrs


# --- files and determinism --------------------------------------------------------------------


def test_dossier_writes_data_files(tmp_path: Path) -> None:
    result = sample_result()
    path = render_dossier(result, tmp_path)
    assert path == tmp_path / "index.html"
    assert CaseResult.from_json(json.loads((tmp_path / "data.json").read_text())) == result
    rows = list(csv.DictReader((tmp_path / "relevance.csv").open(encoding="utf-8")))
    assert [r["token"] for r in rows] == result.attribution.token_texts
    assert [float(r["relevance"]) for r in rows] == result.attribution.relevance
    assert (tmp_path / result.case_file).read_text() == result.case_toml
    html = path.read_text()
    assert 'href="data.json"' in html and 'href="relevance.csv"' in html
    assert ".pdf" not in html  # no figure set compiled yet
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / f"{result.case_id}.pdf").write_bytes(b"%PDF-1.5")
    assert f'href="figures/{result.case_id}.pdf"' in render_dossier(result, tmp_path).read_text()


def test_same_input_gives_identical_bytes(tmp_path: Path) -> None:
    first = render_dossier(hostile_result(), tmp_path / "a").read_bytes()
    second = render_dossier(hostile_result(), tmp_path / "b").read_bytes()
    assert first == second


def test_sections_follow_the_data(tmp_path: Path) -> None:
    full = parse(render_dossier(make_result(), tmp_path / "full").read_text())
    bare = parse(render_dossier(make_result(full=False), tmp_path / "bare").read_text())
    sections = ["graph", "metrics", "faithfulness", "neurons", "comparison"]
    for section in sections:
        assert section in full.ids
        assert section not in bare.ids
    assert set(chart_specs(full)) >= {"chart-layers", "chart-faithfulness"}
    assert "graph-explorer" in full.ids and "graph-explorer" not in bare.ids
    assert set(chart_specs(bare)) == {"chart-relevance", "chart-segments"}


def test_single_file_inlines_runtime_and_css(tmp_path: Path) -> None:
    html = render_dossier(make_result(), tmp_path, single_file=True).read_text()
    page = parse(html)
    assert not any(a.get("src") for a, _ in page.scripts)
    assert not any(tag == "link" for tag, _ in page.attrs)
    assert "window.vegaEmbed=" in html and ".heatmap" in html


# --- colours ----------------------------------------------------------------------------------


def test_colours_by_sign_and_special_grey() -> None:
    assert token_color(1.0, 1.0).background == POSITIVE
    assert token_color(-1.0, 1.0).background == NEGATIVE
    assert token_color(0.0, 1.0).background == (255, 255, 255)
    assert token_color(5.0, 1.0, special=True).background == SPECIAL_BG
    half = token_color(0.5, 1.0).background
    assert half[0] > half[2]  # reddish, lighter than full


def test_normalisation_ignores_special_tokens() -> None:
    relevance = [1000.0, 0.5, -0.25]
    special = [True, False, False]
    assert normalisation(relevance, special) == 0.5
    result = make_result(texts=["<s>", "a", "b"], relevance=relevance, special=special, full=False)
    cells = token_cells(result.attribution)
    assert cells[1].color.background == POSITIVE  # the largest non-special token is full red
    assert cells[2].color.intensity == pytest.approx(-0.5)
    assert cells[0].color.background == SPECIAL_BG


def test_heatmap_spans_carry_colour_and_exact_value(tmp_path: Path) -> None:
    result = make_result(
        texts=["<s>", "a", "b", "\n"],
        relevance=[9.0, 0.5, -0.5, 0.125],
        special=[True] + [False] * 3,
    )
    page = parse(render_dossier(result, tmp_path).read_text())
    assert "#b2182b" in page.styles["tok-1"]
    assert "#2166ac" in page.styles["tok-2"]
    assert "#e0e0e0" in page.styles["tok-0"] and "hm-special" in page.classes["tok-0"]
    assert "R = +0.5" in page.titles["tok-1"] and "R = -0.5" in page.titles["tok-2"]


def test_visible_whitespace() -> None:
    assert visible_text("\n") == "\u21b5"
    assert visible_text(" ") == "\u2423"
    assert visible_text(" the") == " the"
    assert visible_text("") == "\u2205"
    assert visible_text("\x00") == "\u27e6U+0000\u27e7"  # issue 14: U+XXXX, as the PDF


# --- chart specs ------------------------------------------------------------------------------


def test_relevance_chart_spec() -> None:
    result = make_result(full=False)
    spec = charts.relevance_chart(result).to_dict()
    values = spec["data"]["values"]
    assert [v["relevance"] for v in values] == result.attribution.relevance
    assert values[0]["sign"] == "special token" and values[4]["sign"] == "supports contrast"
    assert spec["encoding"]["color"]["scale"]["range"] == ["#b2182b", "#2166ac", "#9e9e9e"]
    assert "pandas" not in json.dumps(spec)


def test_relevance_chart_clamps_huge_special_token() -> None:
    result = hostile_result()
    y = charts.relevance_chart(result).to_dict()["encoding"]["y"]
    assert y["scale"]["clamp"] is True and y["scale"]["domain"][1] < 50


def test_other_dossier_chart_specs() -> None:
    result = make_result()
    layers = charts.layer_sums_chart(result).to_dict()["data"]["values"]
    assert [v["layer"] for v in layers] == ["emb", "0", "0.mid", "1"]
    assert layers[0]["relevance"] == pytest.approx(sum(result.graph.node_relevance[0]))
    segments = charts.segments_chart(result).to_dict()["data"]["values"]
    assert segments == [
        {"segment": "instruction", "relevance": pytest.approx(0.1), "sign": "supports target"}
    ]
    metrics = charts.metrics_chart(result).to_dict()
    # the few metrics a reader can interpret, titled by what they measure (the rest: data.json)
    assert {v["metric"] for v in metrics["data"]["values"]} == {
        "positions carrying relevance",
        "positions holding 90 % of |R|",
        "verticality",
        "mean look-back",
    }
    faith = charts.faithfulness_chart(result).to_dict()
    lines = faith["layer"][1]
    assert {v["ordering"] for v in lines["data"]["values"]} == {
        "attnlrp",
        "grad_x_input",
        "gradient",
        "random",
    }
    comparison = charts.comparison_chart(result).to_dict()["data"]["values"]
    assert [v["model"] for v in comparison] == ["tiny-model", "other-model"]


def test_index_chart_specs() -> None:
    results = [make_result("a"), make_result("b", model="m2", tags={"benchmark": "ifeval"})]
    counts = charts.benchmark_counts_chart(results).to_dict()["data"]["values"]
    assert counts == [{"benchmark": "custom", "cases": 1}, {"benchmark": "ifeval", "cases": 1}]
    scatter = charts.comparison_scatter(results).to_dict()
    assert len(scatter["layer"][1]["data"]["values"]) == 2
    assert charts.comparison_scatter([make_result(full=False)]) is None
    summary = [{"benchmark": "b", "items": 3, "passed": 2, "failed": 1, "pinned": 0, "unpinned": 1}]
    values = charts.summaries_chart(summary).to_dict()["data"]["values"]
    assert {(v["outcome"], v["items"]) for v in values} == {("passed", 2), ("failed", 1)}


# --- site -------------------------------------------------------------------------------------


def test_build_site_layout_and_links(tmp_path: Path) -> None:
    results = [make_result("case-b", model="m2"), make_result("case-a"), hostile_result()]
    (tmp_path / "cases" / "case-a" / "figures").mkdir(parents=True)
    (tmp_path / "cases" / "case-a" / "figures" / "case-a.pdf").write_bytes(b"%PDF-1.5")
    summaries = [
        {"benchmark": "ifeval", "items": 4, "passed": 3, "failed": 1, "pinned": 1, "unpinned": 0}
    ]
    index = build_site(
        results, tmp_path, failures=[("cases/<bad>.toml", "no such model")], summaries=summaries
    )
    assert index == tmp_path / "index.html"
    assert (tmp_path / ".nojekyll").exists()
    assert (tmp_path / "assets" / "style.css").is_file()
    assert (tmp_path / "assets" / "vega-bundle.js").stat().st_size > 100_000
    html = index.read_text()
    page = parse(html)
    hrefs = [a.get("href") for tag, a in page.attrs if tag == "a"]
    assert hrefs[:4] == [
        "cases/case-a/index.html",
        "cases/case-a/figures/case-a.pdf",
        "cases/case-b/index.html",
        "cases/hostile-case/index.html",
    ]
    assert all(not (h or "").startswith(("/", "http")) for h in hrefs)
    assert "&lt;bad&gt;.toml" in html and "no such model" in html
    assert "<script>alert" not in html
    assert set(chart_specs(page)) == {
        "chart-benchmarks",
        "chart-models",
        "chart-comparison",
        "chart-outcomes",
        # the study figures: the summary's funnel, the cases' metric profiles and persistence
        "chart-funnel",
        "chart-profiles",
        "chart-persistence",
    }
    dossier = (tmp_path / "cases" / "case-a" / "index.html").read_text()
    assert 'href="../../assets/style.css"' in dossier and 'href="../../index.html"' in dossier
    for result in results:
        assert (tmp_path / "cases" / result.case_id / "data.json").is_file()


def test_build_site_refuses_unsafe_ids(tmp_path: Path) -> None:
    bad = CaseResult(**{**make_result(full=False).__dict__, "case_id": "../escape"})
    with pytest.raises(ValueError, match="not a safe file name"):
        build_site([bad], tmp_path)


def test_graph_downloads_npz_and_csv(tmp_path):
    import numpy as np
    from render_fixtures import make_result

    from reportgen.render.html import render_dossier

    result = make_result()
    render_dossier(result, tmp_path / "a")
    render_dossier(result, tmp_path / "b")
    assert (tmp_path / "a" / "graph.npz").read_bytes() == (
        tmp_path / "b" / "graph.npz"
    ).read_bytes()
    with np.load(tmp_path / "a" / "graph.npz", allow_pickle=False) as data:
        assert list(data["layers"]) == list(result.graph.layers)
        assert data["edge_weight"].shape[0] == result.graph.n_edges == 4
        np.testing.assert_allclose(data["node_relevance"], result.graph.node_relevance)
    rows = (tmp_path / "a" / "edges.csv").read_text().splitlines()
    assert rows[0] == "source_layer,source,target_layer,target,weight"
    assert len(rows) == result.graph.n_edges + 1
    assert "graph.npz" in (tmp_path / "a" / "index.html").read_text()
