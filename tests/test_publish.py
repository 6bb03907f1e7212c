"""Publishing for real (issue 29): a site served under a sub-path as GitHub Pages serves a
project site (zero broken links), one self-contained file opened alone and offline in
Chromium, the zip, no build-machine path in any published file, 390 px layouts, quick mode's
numbers, the gh-pages branch and the Pages workflow.

Two cases on a tiny random Llama loaded from a temporary folder (an absolute local path: the
path that must not be published); the site is built once per module."""

from __future__ import annotations

import functools
import http.server
import json
import logging
import subprocess
import threading
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner

from reportgen.build import build, compute_results
from reportgen.cases import load_case
from reportgen.cli import main
from reportgen.errors import CaseError
from reportgen.publish import (
    PAGES_WORKFLOW,
    ZIP_LIMIT,
    PublishError,
    publish_branch,
    write_single_file,
    write_zip,
)

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]

README = """# A project

See [the method](docs/method.md), [a file that stays behind](notes/private.txt) and
![a picture](docs/missing.png).

```bash
reportgen build cases/ --out site/_build   # a long line that a phone must scroll, not the page
```
"""

PROJECT = """
[site]
title = "Tiny failures"
links = [
  { label = "README", url = "README.md" },
  { label = "Method", url = "docs/method.md#one" },
  { label = "Case files", url = "cases/" },
  { label = "Code", url = "https://code.example/repo" },
]
featured = ["case-a", "not-in-this-build"]
"""

CASE = """id = "{id}"
title = "Case {id}"
model = "{model}"
prompt = "{prompt}"
target = "paris"
contrast = "lyon"
tags = {{ benchmark = "facts" }}
"""


class Warnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tiny_models import save_tiny_llama

    root = tmp_path_factory.mktemp("publish-project")
    model = save_tiny_llama(root / "models" / "tiny-llama")
    (root / "cases").mkdir()
    prompts = {"case-a": "the capital of france is", "case-b": "list three primary colors : red"}
    for case_id, prompt in prompts.items():
        text = CASE.format(id=case_id, model=model, prompt=prompt)
        (root / "cases" / f"{case_id}.toml").write_text(text, encoding="utf-8")
    (root / "docs").mkdir()
    (root / "docs" / "method.md").write_text(
        "# Method\n\n## One\n\nBack to [README](../README.md).\n"
    )
    (root / "notes").mkdir()
    (root / "notes" / "private.txt").write_text("not published\n")
    (root / "README.md").write_text(README, encoding="utf-8")
    (root / "reportgen.toml").write_text(PROJECT, encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def site(project: Path) -> dict:
    """The site at www/REPO (served below as /REPO/), built like `reportgen build` (in full:
    the table has a flip-k column and PDFs)."""
    handler = Warnings()
    logger = logging.getLogger("reportgen")
    logger.addHandler(handler)
    out = project / "www" / "REPO"
    try:
        report = build([project / "cases"], out, pdf=True, progress=False)
    finally:
        logger.removeHandler(handler)
    assert not report.failures, report.failures
    return {"out": out, "warnings": handler.lines}


def _results(project: Path, *, fast: bool) -> list:
    from reportgen.build import BuildReport

    cases = [load_case(project / "cases" / "case-a.toml")]
    return compute_results(
        cases,
        use_cache=True,
        keep_going=False,
        command="reportgen run",
        report=BuildReport(out=project),
        fast=fast,
    )


@pytest.fixture(scope="module")
def fast_result(project: Path, site: dict):
    (result,) = _results(project, fast=True)
    return result


# --- crawling a site served under /REPO/ -------------------------------------------------------


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"])
        for name in ("href", "src"):
            if a.get(name) is not None and tag in ("a", "link", "script", "img", "iframe"):
                self.urls.append(a[name])


def parse_links(html: str) -> Links:
    parser = Links()
    parser.feed(html)
    return parser


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def served(site: dict):
    """``python -m http.server`` on the parent folder: the site is at /REPO/."""
    handler = functools.partial(Quiet, directory=str(site["out"].parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/REPO/"
    server.shutdown()
    server.server_close()


def crawl(start: str) -> tuple[dict[str, int], list[str]]:
    """Every page and file reachable from ``start`` on its host: {url: status}, broken links."""
    host = urllib.parse.urlsplit(start).netloc
    seen: dict[str, int] = {}
    pages: dict[str, Links] = {}
    broken: list[str] = []
    todo = [(start, "start")]
    fragments: list[tuple[str, str, str]] = []
    while todo:
        url, origin = todo.pop()
        if url in seen:
            continue
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                seen[url] = response.status
                body = response.read()
                kind = response.headers.get_content_type()
        except urllib.error.HTTPError as error:
            seen[url] = error.code
            broken.append(f"{url} ({error.code}) linked from {origin}")
            continue
        if kind != "text/html":
            continue
        links = parse_links(body.decode("utf-8"))
        pages[url] = links
        for raw in links.urls:
            absolute = urllib.parse.urljoin(url, raw)
            parts = urllib.parse.urlsplit(absolute)
            if parts.scheme not in ("http", "https") or parts.netloc != host:
                continue
            target = urllib.parse.urlunsplit(parts._replace(fragment=""))
            if parts.fragment:
                fragments.append((target, parts.fragment, url))
            todo.append((target, url))
    for target, fragment, origin in fragments:
        if target in pages and fragment not in pages[target].ids:
            broken.append(f"{target}#{fragment} (no such id) linked from {origin}")
    return seen, broken


def test_site_under_a_sub_path_has_no_broken_link(served: str) -> None:
    seen, broken = crawl(served + "index.html")
    assert broken == []
    visited = {urllib.parse.urlsplit(u).path for u in seen}
    # the project page's buttons lead to copies inside the site, never out of it
    for path in (
        "/REPO/project-files/README.html",
        "/REPO/project-files/docs/method.html",
        "/REPO/project-files/cases/index.html",
        "/REPO/project-files/cases/case-a.toml",
        "/REPO/cases/case-a/index.html",
        "/REPO/cases/case-a/data.json",
        "/REPO/cases/case-a/figures/case-a.pdf",
        "/REPO/assets/vega-bundle.js",
    ):
        assert path in visited, path
    assert not any("private.txt" in u for u in seen)  # not linked from the site: not copied


def test_the_shipped_project_links_stay_inside_the_site(tmp_path: Path) -> None:
    """The shipped reportgen.toml: its README, Method and Case files buttons open copies."""
    from render_fixtures import make_result

    from reportgen.project import load_project
    from reportgen.render.site import build_site

    project = load_project(ROOT / "reportgen.toml")
    out = tmp_path / "site"
    build_site(
        [make_result("primary-colors-yellow")],
        out,
        site_info=project.site,
        project_file=project.path,
    )
    hrefs = [u for u in parse_links((out / "index.html").read_text()).urls if "project-files" in u]
    assert hrefs == [
        "project-files/README.html",
        "project-files/docs/method.html",
        "project-files/cases/index.html",
    ]
    for href in hrefs:
        assert (out / href).is_file()
    assert (out / "project-files" / "cases" / "primary-colors-yellow.toml").is_file()


def test_a_relative_link_to_nothing_is_an_error_naming_the_field(tmp_path: Path) -> None:
    from render_fixtures import make_result

    from reportgen.project import load_project
    from reportgen.render.site import build_site

    path = tmp_path / "reportgen.toml"
    path.write_text(
        '[site]\ntitle = "t"\nlinks = [{label = "Ok", url = "https://x.example"},'
        ' {label = "Gone", url = "../../no-such-file.md"}]\n'
    )
    project = load_project(path)
    with pytest.raises(CaseError) as error:
        build_site(
            [make_result("case-a")], tmp_path / "s", site_info=project.site, project_file=str(path)
        )
    assert "site.links[1].url" in str(error.value) and str(path) in str(error.value)
    path.write_text('[site]\ntitle = "t"\nauthors = [{name = "A", url = "/people/a"}]\n')
    with pytest.raises(CaseError, match=r"site\.authors\[0\]\.url.*root"):
        build_site(
            [make_result("case-a")],
            tmp_path / "s",
            site_info=load_project(path).site,
            project_file=str(path),
        )


def test_absent_featured_case_warns_once_and_is_left_out(site: dict) -> None:
    lines = [line for line in site["warnings"] if "site.featured" in line]
    assert len(lines) == 1 and "'not-in-this-build'" in lines[0]
    html = (site["out"] / "index.html").read_text(encoding="utf-8")
    assert 'id="featured-case-a"' in html and "featured-not-in-this-build" not in html


# --- one file, one zip ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def single_file(project: Path, site: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """case-a's dossier as one file, alone in an otherwise empty folder."""
    from reportgen.compute import cached_result, result_key

    case = load_case(project / "cases" / "case-a.toml")
    result = cached_result(result_key(case, Path(case.path).read_text()))
    assert result is not None  # from the site's build
    out = tmp_path_factory.mktemp("alone") / "case-a.html"
    write_single_file(result, out, pdf=True)
    assert [p.name for p in out.parent.iterdir()] == ["case-a.html"]
    return out


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium missing")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser
        browser.close()


def test_single_file_alone_offline_in_chromium(browser, single_file: Path) -> None:
    context = browser.new_context(offline=True, accept_downloads=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    try:
        page.goto(single_file.as_uri())
        page.wait_for_function(
            "[...document.querySelectorAll('div[id^=chart-]')].every(d => d.querySelector('svg'))",
            timeout=30_000,
        )
        assert page.locator("div[id^=chart-] svg").count() >= 3
        links = page.eval_on_selector_all("a[href]", "as => as.map(a => a.getAttribute('href'))")
        ids = set(page.eval_on_selector_all("[id]", "els => els.map(e => e.id)"))
        for href in links:
            if href.startswith("#"):
                assert href == "#" or href[1:] in ids, href
            else:
                assert href.startswith(("https://", "http://", "data:", "blob:")), href
        assert "All cases" not in page.inner_text("body")  # no site to go back to
        names = page.eval_on_selector_all(
            "a[data-embedded]", "as => as.map(a => a.getAttribute('download'))"
        )
        assert {"data.json", "relevance.csv", "graph.npz", "edges.csv", "case-a.pdf"} <= set(names)
        with page.expect_download() as info:
            page.click("a[download='data.json']")
        data = json.loads(Path(info.value.path()).read_text(encoding="utf-8"))
        assert data["case_id"] == "case-a"
        with page.expect_download() as info:
            page.click("a[download='case-a.pdf']")
        assert Path(info.value.path()).read_bytes()[:5] == b"%PDF-"
        assert errors == []
        assert all(u.startswith(("file:", "data:", "blob:")) for u in requests), requests
    finally:
        context.close()


def test_zip_is_the_dossier_folder_under_the_limit(
    project: Path, fast_result, tmp_path: Path
) -> None:
    out = tmp_path / "bug-report.zip"
    failures, size = write_zip(fast_result, out, pdf=False)
    assert failures == [] and size == out.stat().st_size < ZIP_LIMIT
    with zipfile.ZipFile(out) as zf:
        names = set(zf.namelist())
        assert {
            "case-a/index.html",
            "case-a/assets/vega-bundle.js",
            "case-a/cases/case-a/index.html",
            "case-a/cases/case-a/data.json",
            "case-a/cases/case-a/graph.npz",
            "case-a/cases/case-a/case-a.toml",
        } <= names
        assert json.loads(zf.read("case-a/cases/case-a/data.json"))["case_id"] == "case-a"
    with pytest.raises(PublishError, match="25|limit"):
        write_zip(fast_result, tmp_path / "too-big.zip", pdf=False, limit=10_000)
    assert not (tmp_path / "too-big.zip").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["bug-report.zip"]  # no leftovers


def _published_files(site: dict, single_file: Path, tmp_path: Path) -> dict[str, bytes]:
    files = {str(p): p.read_bytes() for p in site["out"].rglob("*") if p.is_file()}
    files[str(single_file)] = single_file.read_bytes()
    return files


def test_no_build_machine_path_in_any_published_file(
    project: Path, site: dict, single_file: Path, fast_result, tmp_path: Path
) -> None:
    files = _published_files(site, single_file, tmp_path)
    # the embedded downloads of the single file, decoded
    import base64
    import re

    html = single_file.read_text(encoding="utf-8")
    for i, blob in enumerate(
        re.findall(r'<script type="application/octet-stream" id="[^"]+">([^<]*)</script>', html)
    ):
        files[f"{single_file}#embedded-{i}"] = base64.b64decode(blob)
    write_zip(fast_result, tmp_path / "d.zip", pdf=False)
    with zipfile.ZipFile(tmp_path / "d.zip") as zf:
        for name in zf.namelist():
            files[f"zip:{name}"] = zf.read(name)
    needles = [str(project).encode(), (str(Path.home()) + "/").encode()]
    needles += [str(project.resolve()).encode(), b"/tmp/"]
    offenders = [name for name, data in files.items() if any(n in data for n in needles)]
    assert offenders == []
    data = json.loads((site["out"] / "cases" / "case-a" / "data.json").read_text())
    assert data["model"] == "tiny-llama"
    source = data["environment"]["model_source"]
    assert source.startswith("tiny-llama (local files, content sha256 ") and len(source) > 60


# --- quick mode ----------------------------------------------------------------------------------


def test_fast_mode_has_the_full_numbers_without_faithfulness(
    project: Path, fast_result, tmp_path: Path
) -> None:
    from reportgen.compute import result_key

    (full,) = _results(project, fast=False)  # cached by the site's build
    assert full.faithfulness is not None and fast_result.faithfulness is None
    assert fast_result.attribution.relevance == full.attribution.relevance
    assert fast_result.attribution.explained == full.attribution.explained
    assert fast_result.graph.to_json() == full.graph.to_json()
    assert fast_result.metrics == full.metrics and fast_result.neurons == full.neurons
    assert fast_result.environment["quick_mode_skipped"] == ["faithfulness", "interventions"]
    assert fast_result.interventions is None and full.interventions is not None
    case = load_case(project / "cases" / "case-a.toml")
    text = Path(case.path).read_text()
    assert result_key(case, text, fast=True) != result_key(case, text)
    # the dossier says what was skipped
    from reportgen.render.html import render_dossier

    page = render_dossier(fast_result, tmp_path / "d").read_text(encoding="utf-8")
    assert 'id="quick-mode"' in page and "faithfulness test" in page and "ablated" in page
    assert 'id="quick-mode"' not in render_dossier(full, tmp_path / "f").read_text()


def test_fast_is_named_in_help() -> None:
    for command in ("run", "build"):
        result = CliRunner().invoke(main, [command, "--help"])
        assert "--fast" in result.output and "--no-faithfulness" in result.output


def test_single_file_and_zip_need_a_file_name(project: Path, tmp_path: Path) -> None:
    case = str(project / "cases" / "case-a.toml")
    for flag, name in (("--single-file", "x.txt"), ("--zip", "x.html")):
        result = CliRunner().invoke(main, ["run", case, flag, "--out", str(tmp_path / name)])
        assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1
        assert flag in result.output
    assert list(tmp_path.iterdir()) == []


# --- 390 px --------------------------------------------------------------------------------------


def test_index_and_dossier_fit_390_px(browser, served: str) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    try:
        for url in (served + "index.html", served + "cases/case-a/index.html"):
            page.goto(url)
            page.wait_for_function(
                "[...document.querySelectorAll('div[id^=chart-]')]"
                ".every(d => d.querySelector('svg'))",
                timeout=30_000,
            )
            width = page.evaluate("document.documentElement.clientWidth")
            assert page.evaluate("document.documentElement.scrollWidth") <= width, url
            rights = page.eval_on_selector_all(
                "div[id^=chart-] svg", "s => s.map(e => e.getBoundingClientRect().right)"
            )
            assert rights and max(rights) <= width, (url, rights)
        # the cases table keeps f, flip-k and the PDF in view
        page.goto(served + "index.html")
        headers = page.eval_on_selector_all(
            "#case-table th",
            "hs => hs.filter(h => h.getClientRects().length)"
            ".map(h => [h.textContent.trim(), h.getBoundingClientRect().right])",
        )
        shown = {name: right for name, right in headers}
        assert {"f", "flip-k", "figures"} <= set(shown)
        assert max(shown.values()) <= width
        pdf = page.locator("#case-table a", has_text="PDF").first
        assert pdf.bounding_box()["x"] + pdf.bounding_box()["width"] <= width
        # a featured card shows its last (decisive) tokens
        last = page.locator("#featured-case-a .hm").last
        box, card = last.bounding_box(), page.locator("#featured-case-a").bounding_box()
        assert box["y"] + box["height"] <= card["y"] + card["height"] + 1
        assert last.is_visible()
    finally:
        context.close()


# --- gh-pages and the workflow -------------------------------------------------------------------


def _git(folder: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(folder), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_publish_onto_gh_pages_of_a_fresh_repository(site: dict, tmp_path: Path) -> None:
    import shutil

    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "config", "user.email", "t@example.com")
    _git(repo, "config", "user.name", "T")
    (repo / ".gitignore").write_text("site/_build/\n")
    _git(repo, "add", ".gitignore")
    _git(repo, "commit", "-q", "-m", "init")
    _git(repo, "remote", "add", "origin", str(remote))
    built = repo / "site" / "_build"
    shutil.copytree(site["out"], built)
    commit, n = publish_branch(built, repo=repo, push="origin")
    assert n > 10
    tree = _git(remote, "ls-tree", "-r", "--name-only", "gh-pages").splitlines()
    assert {"index.html", ".nojekyll", "cases/case-a/index.html", "assets/style.css"} <= set(tree)
    assert ".reportgen-site" not in tree
    assert _git(repo, "rev-parse", "--abbrev-ref", "HEAD") == "main"
    assert _git(repo, "status", "--porcelain") == ""  # work tree and index untouched
    again, _ = publish_branch(built, repo=repo)
    assert again == commit  # nothing changed: no new commit
    (built / "extra.txt").write_text("x")
    third, _ = publish_branch(built, repo=repo)
    assert _git(repo, "rev-parse", f"{third}^") == commit
    result = CliRunner().invoke(main, ["publish", "--site", str(tmp_path), "--repo", str(repo)])
    assert result.exit_code == 1 and "no index.html" in result.output


def test_pages_workflow_is_shipped_and_written_on_request(tmp_path: Path) -> None:
    shipped = (ROOT / ".github" / "workflows" / "pages.yml").read_text(encoding="utf-8")
    assert shipped == PAGES_WORKFLOW
    for needle in (
        "actions/upload-pages-artifact",
        "actions/deploy-pages",
        "scripts/setup.sh",
        "reportgen build",
        "path: site/_build",
    ):
        assert needle in shipped
    result = CliRunner().invoke(main, ["pages", "init", "--repo", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / ".github" / "workflows" / "pages.yml").read_text() == PAGES_WORKFLOW


def test_abstract_links_are_brought_into_the_site_too(tmp_path: Path) -> None:
    from render_fixtures import make_result

    from reportgen.project import load_project
    from reportgen.render.site import build_site

    (tmp_path / "notes.md").write_text("# Notes\n")
    path = tmp_path / "reportgen.toml"
    path.write_text(
        '[site]\ntitle = "t"\nabstract = "See [the notes](notes.md) and [x](#cases)."\n'
    )
    project = load_project(path)
    build_site(
        [make_result("case-a")], tmp_path / "s", site_info=project.site, project_file=str(path)
    )
    html = (tmp_path / "s" / "index.html").read_text(encoding="utf-8")
    assert 'href="project-files/notes.html"' in html and 'href="#cases"' in html
    assert (tmp_path / "s" / "project-files" / "notes.html").is_file()
    path.write_text('[site]\ntitle = "t"\nabstract = "See [gone](gone.md)."\n')
    with pytest.raises(CaseError, match=r"site\.abstract"):
        build_site(
            [make_result("case-a")],
            tmp_path / "s2",
            site_info=load_project(path).site,
            project_file=str(path),
        )


def test_run_fast_single_file_through_the_command_line(
    project: Path, fast_result, tmp_path: Path
) -> None:
    out = tmp_path / "report" / "case-a.html"
    case = str(project / "cases" / "case-a.toml")
    result = CliRunner().invoke(main, ["run", case, "--fast", "--single-file", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert [p.name for p in out.parent.iterdir()] == ["case-a.html"]
    html = out.read_text(encoding="utf-8")
    assert 'id="quick-mode"' in html and "data-embedded=" in html
    links = parse_links(html)
    assert all(u.startswith(("#", "https://", "http://")) for u in links.urls), links.urls
    assert "case-a.pdf" not in html  # quick mode: no PDF unless --pdf


def test_build_single_file_pages_keep_no_relative_download(tmp_path: Path) -> None:
    from render_fixtures import make_result

    from reportgen.render.site import build_site

    build_site([make_result("case-a")], tmp_path / "s", single_file=True)
    html = (tmp_path / "s" / "cases" / "case-a" / "index.html").read_text(encoding="utf-8")
    urls = parse_links(html).urls
    assert "../../index.html" in urls  # the site exists: the way back stays
    others = [u for u in urls if u != "../../index.html"]
    assert all(u.startswith(("#", "https://", "http://")) for u in others), others
    assert 'download="data.json"' in html


def test_published_result_keeps_numbers_and_drops_local_paths() -> None:
    import dataclasses

    from render_fixtures import make_result

    from reportgen.published import published_result

    home = str(Path.home())
    result = make_result("case-a", model="/srv/models/my-llama")
    result = dataclasses.replace(
        result,
        case_toml='model = "/srv/models/my-llama"\nprompt = "x"\n',
        environment={
            "model_source": "/srv/models/my-llama",
            "model_identity": "/srv/models/my-llama:0123abcd",
            "command": f"reportgen run {home}/work/case.toml --out=/var/tmp/out --no-pdf",
            "note": f"cache at {home}/.cache/reportgen",
        },
    )
    published = published_result(result)
    text = json.dumps(published.to_json())
    assert "/srv/" not in text and "/var/tmp" not in text and home + "/" not in text
    assert published.model == published.attribution.model == "my-llama"
    assert published.environment["model_source"] == (
        "my-llama (local files, content sha256 0123abcd)"
    )
    assert published.environment["model_identity"] == "my-llama:0123abcd"
    assert published.environment["command"] == "reportgen run case.toml --out=out --no-pdf"
    assert published.environment["note"] == "cache at ~/.cache/reportgen"
    assert published.case_toml == 'model = "my-llama"\nprompt = "x"\n'
    assert published.attribution.relevance == result.attribution.relevance
    assert published_result(published) == published  # idempotent
