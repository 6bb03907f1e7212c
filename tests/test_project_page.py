"""The index as a project page (reportgen.toml [site]): every field rendered, all of it escaped."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import pytest
from render_fixtures import hostile_result, make_result

from reportgen.project import load_project
from reportgen.render.project_page import render_markdown, safe_link
from reportgen.render.site import build_site

HOSTILE = "</script><img src=x onerror=alert(1)> \" ' $\\frac{a}{b}$ \\input{x} \x07\x1b"

HOSTILE_TOML = r'''
[site]
title = "Title </script><img src=x onerror=alert(1)> \" ' $\\frac{a}{b}$ \u0007"
subtitle = "Sub </script><img src=x onerror=alert(2)> \" ' \\input{x} \u001b"
authors = [
  {name = "Name <img src=x onerror=alert(3)>", affiliation = "Aff </script>&amp; \" '", url = "https://a.example/?q=\"><script>alert(4)</script>"},
  "Plain <b>bold</b>",
]
abstract = """
Hello *world* <script>alert(5)</script> <img src=x onerror=alert(6)>

[bad](javascript:alert(7)) [worse](JaVaScRiPt:alert(8)) [data](data:text/html,<script>alert(9)</script>)
[ok](https://ok.example/path) [rel](#citation) ![remote](https://img.example/a.png)

$\\sum_i R_i = f$ and `</script>` in code.
"""
links = [
  {label = "Code </a><script>alert(10)</script>", url = "https://code.example/\"onmouseover=alert(11)"},
  {label = "Docs", url = "docs/method.md"},
]
bibtex = """@misc{x, title = {</pre><script>alert(12)</script> \\LaTeX{} "q" 'q'}}"""
featured = ["hostile-case", "case-a"]
'''


class Page(HTMLParser):
    """Every element and attribute of the page, and the text of each script element."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[str] = []
        self.ids: dict[str, int] = {}
        self._in_script = False
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        if a.get("id"):
            self.ids[a["id"]] = len(self.tags) - 1
        self._in_script = tag == "script"
        if tag == "script":
            self.scripts.append("")

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.scripts[-1] += data
        else:
            self.text.append(data)


@pytest.fixture(scope="module")
def hostile_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("project")
    path = root / "reportgen.toml"
    path.write_text(HOSTILE_TOML, encoding="utf-8")
    (root / "docs").mkdir()
    (root / "docs" / "method.md").write_text("# Method\n", encoding="utf-8")
    project = load_project(path)
    out = root / "site"
    build_site(
        [make_result("case-a"), make_result("case-b", full=False), hostile_result()],
        out,
        site_info=project.site,
        project_file=project.path,
    )
    return out


def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def test_hostile_project_page_is_escaped_and_intact(hostile_site: Path) -> None:
    html = (hostile_site / "index.html").read_text(encoding="utf-8")
    page = parse(hostile_site / "index.html")
    # no injected element: no <img>, and every script is one of ours
    assert [t for t, _ in page.tags if t == "img"] == []
    assert all(not any(k.startswith("on") for k in a) for _, a in page.tags)
    srcs = sorted(a.get("src") or "inline" for t, a in page.tags if t == "script")
    assert srcs == ["assets/project.js", "assets/vega-bundle.js", "inline", "inline", "inline"]
    assert not any("alert(" in s for s in page.scripts)
    # every href is http(s), mailto or relative
    hrefs = [a["href"] for t, a in page.tags if t == "a" and a.get("href")]
    assert hrefs and all(safe_link(h) for h in hrefs), hrefs
    assert not any(h.lower().startswith(("javascript:", "data:")) for h in hrefs)
    # the text is shown to the reader, escaped
    assert "Title &lt;/script&gt;&lt;img src=x onerror=alert(1)&gt; &#34;" in html
    assert "\x07" not in html and "\x1b" not in html
    assert "$\\frac{a}{b}$" in html  # LaTeX is text, not interpreted
    # every section is there, in order, after the hostile text
    order = ["abstract", "featured", "cases", "overview", "citation"]
    positions = [page.ids[name] for name in order]
    assert positions == sorted(positions)
    assert "featured-hostile-case" in page.ids and "featured-case-a" in page.ids
    assert html.rstrip().endswith("</html>")


def test_abstract_markdown_without_raw_html_or_unsafe_links() -> None:
    out = render_markdown(
        "*a* <b>b</b> [x](javascript:alert(1)) [y](https://y.example) ![i](https://i.example/p.png)"
        " [z](vbscript:x) [w](//evil.example/x)"
    )
    assert "<em>a</em>" in out
    assert "&lt;b&gt;b&lt;/b&gt;" in out
    assert '<a href="https://y.example">y</a>' in out
    assert "javascript" in out and 'href="javascript' not in out  # shown as text, not linked
    assert "<img" not in out and 'href="vbscript' not in out and 'href="//evil' not in out


def test_project_header_authors_links_and_citation(hostile_site: Path) -> None:
    page = parse(hostile_site / "index.html")
    text = "".join(page.text)
    assert "Name <img src=x onerror=alert(3)>" in text  # as text
    assert "Plain <b>bold</b>" in text
    buttons = [a for t, a in page.tags if t == "a" and "link-button" in (a.get("class") or "")]
    assert [b["href"] for b in buttons] == [
        'https://code.example/"onmouseover=alert(11)',
        "project-files/docs/method.html",  # copied into the site, rendered
    ]
    assert (hostile_site / "project-files" / "docs" / "method.html").is_file()
    assert "</pre><script>alert(12)</script>" in text  # the BibTeX, verbatim as text
    assert (
        "button",
        {
            "type": "button",
            "class": "copy-button",
            "id": "copy-bibtex",
            "data-copy-target": "bibtex",
        },
    ) in page.tags


def test_without_project_file_the_index_is_unchanged(tmp_path: Path) -> None:
    build_site([make_result("case-a")], tmp_path / "plain")
    html = (tmp_path / "plain" / "index.html").read_text(encoding="utf-8")
    assert "Why does the model pick the wrong token?" in html
    assert "project.js" not in html and 'id="abstract"' not in html and 'id="citation"' not in html


def test_featured_id_absent_from_the_build_warns_and_is_left_out(tmp_path: Path, caplog) -> None:
    path = tmp_path / "reportgen.toml"
    path.write_text('[site]\ntitle = "x"\nfeatured = ["case-a", "nope"]\n', encoding="utf-8")
    project = load_project(path)
    with caplog.at_level("WARNING", logger="reportgen"):
        build_site(
            [make_result("case-a")],
            tmp_path / "s",
            site_info=project.site,
            project_file=project.path,
        )
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "site.featured" in lines[0] and "'nope'" in lines[0]
    assert str(path) in lines[0]
    html = (tmp_path / "s" / "index.html").read_text(encoding="utf-8")
    assert 'id="featured-case-a"' in html and "featured-nope" not in html


def test_shipped_project_file_describes_the_collection() -> None:
    root = Path(__file__).resolve().parent.parent
    project = load_project(root / "reportgen.toml")
    site = project.site
    assert site is not None and site.title.startswith("Why do small language models")
    assert "Qwen2.5-Coder" in site.subtitle and "SmolLM2" in site.subtitle
    assert [a.name for a in site.authors] == ["reportgen developers"]
    ids = {p.stem for p in (root / "cases").rglob("*.toml")}  # collected: file name = id
    assert site.featured and set(site.featured) <= ids
    assert "AttnLRP" in site.abstract and site.bibtex.lstrip().startswith("@misc")


def test_build_warns_about_absent_featured_ids_before_computing(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from reportgen.cli import main

    cases = tmp_path / "cases"
    cases.mkdir()
    (cases / "one.toml").write_text(
        'id = "one"\nmodel = "no-such-model"\nprompt = "p"\ntarget = "a"\ncontrast = "b"\n'
    )
    (tmp_path / "reportgen.toml").write_text('[site]\ntitle = "t"\nfeatured = ["one", "nope"]\n')
    result = CliRunner().invoke(main, ["build", str(cases), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1  # the model does not exist
    warning = result.output.index("site.featured: 'nope' not in this build")
    assert warning < result.output.index("no-such-model")  # warned before any model was loaded
