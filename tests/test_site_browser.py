"""The built site in a real (headless) browser: charts render offline, pages are not blank.

Runs chromium against file:// URLs with every host unresolvable, so a page that needed the
network (a CDN script, a remote font) would log a load error and fail the console check."""

from __future__ import annotations

import re
import struct
import subprocess
import zlib
from html.parser import HTMLParser
from pathlib import Path

import pytest
from render_fixtures import hostile_result, make_result

from reportgen.render.site import build_site

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium missing")

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--virtual-time-budget=5000",
    "--window-size=1280,2000",
]


def chromium(url: str, tmp: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    profile = tmp / f"profile-{len(list(tmp.glob('profile-*')))}"
    profile.mkdir()
    return subprocess.run(
        [str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", *extra, url],
        capture_output=True,
        text=True,
        errors="replace",
        timeout=120,
        check=False,
    )


class ChartCheck(HTMLParser):
    """For each chart div (id "chart-*"): did an <svg> or <canvas> end up inside it?"""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[tuple[str, str | None]] = []
        self.rendered: dict[str, bool] = {}
        self.errors: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        chart = a.get("id") if (a.get("id") or "").startswith("chart-") and tag == "div" else None
        if chart:
            self.rendered[chart] = False
        if "chart-error" in (a.get("class") or ""):
            self.errors.append(a.get("id") or "?")
        if tag in ("svg", "canvas"):
            for _, open_chart in self.stack:
                if open_chart:
                    self.rendered[open_chart] = True
        if tag not in {"meta", "link", "br", "input", "img", "hr", "wbr"}:
            self.stack.append((tag, chart))

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                del self.stack[i:]
                return


def png_stats(path: Path) -> tuple[int, int, int]:
    """(width, height, distinct scanlines) of a PNG, decoded with zlib only (no Pillow).

    A blank page gives a handful of distinct filtered scanlines; a rendered page hundreds."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height, bpp = 8, b"", 0, 0, 4
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", body[:10])
            assert depth == 8
            bpp = {2: 3, 6: 4, 0: 1, 4: 2}[color]
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = 1 + width * bpp
    assert len(raw) == stride * height
    rows = {raw[i : i + stride] for i in range(0, len(raw), stride)}
    return width, height, len(rows)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    results = [
        make_result("case-a"),
        make_result("case-b", model="other-model", full=False, tags={"benchmark": "ifeval"}),
        hostile_result(),
    ]
    summaries = [
        {"benchmark": "ifeval", "items": 5, "passed": 3, "failed": 2, "pinned": 1, "unpinned": 1}
    ]
    build_site(results, out, failures=[("cases/broken.toml", "no such model")], summaries=summaries)
    return out


PAGES = ["index.html", "cases/case-a/index.html", "cases/hostile-case/index.html"]


@pytest.mark.parametrize("page", PAGES)
def test_charts_render_without_console_errors(site: Path, page: str, tmp_path: Path) -> None:
    proc = chromium(
        (site / page).as_uri(), tmp_path, "--enable-logging=stderr", "--v=0", "--dump-dom"
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    check = ChartCheck()
    check.feed(proc.stdout)
    assert check.rendered, "no chart divs in the DOM"
    assert all(check.rendered.values()), check.rendered
    assert check.errors == []
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    assert console == []
    assert "ERR_NAME_NOT_RESOLVED" not in proc.stderr


def test_hostile_dossier_runs_no_injected_script(site: Path, tmp_path: Path) -> None:
    page = (site / "cases/hostile-case/index.html").as_uri()
    proc = chromium(page, tmp_path, "--dump-dom")
    dom = proc.stdout
    # the graph explorer's data, the runtime, the specs, the embed call, links, the explorer
    # (its export and pinned-subgraph scripts, and the drawing)
    assert len(re.findall(r"<script", dom)) == 8
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom  # shown to the reader as text


@pytest.mark.parametrize("page", ["index.html", "cases/case-a/index.html"])
def test_screenshot_is_not_blank(site: Path, page: str, tmp_path: Path) -> None:
    shot = tmp_path / "shot.png"
    proc = chromium((site / page).as_uri(), tmp_path, f"--screenshot={shot}")
    assert shot.is_file(), proc.stderr[-2000:]
    assert shot.stat().st_size > 20_000
    width, height, distinct_rows = png_stats(shot)
    assert (width, height) == (1280, 2000)
    assert distinct_rows > 200


def test_built_html_loads_nothing_remote(site: Path) -> None:
    for path in site.rglob("*.html"):
        html = path.read_text(encoding="utf-8")
        assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html), path
        assert "@import" not in html
    css = (site / "assets" / "style.css").read_text()
    assert "url(" not in css and "@import" not in css


# --- long inputs ------------------------------------------------------------------------------

WIDTH_CHECK = """() => {
  const page = document.documentElement.clientWidth;
  const wide = [];
  for (const el of document.querySelectorAll("main *, header *")) {
    const box = el.getBoundingClientRect();
    if (box.width > 0 && box.right > page + 1 && !el.closest(".chart")) {
      wide.push(el.tagName + "." + el.className + " " + Math.round(box.right));
    }
  }
  const charts = [...document.querySelectorAll(".chart")].map(c => ({
    id: c.id,
    svg: !!c.querySelector("svg"),
    failed: c.classList.contains("chart-error"),
    wider: c.querySelector("svg") ? c.querySelector("svg").getBoundingClientRect().width > c.clientWidth + 1 : false,
  }));
  return {scroll: document.documentElement.scrollWidth, page, wide: wide.slice(0, 10), charts};
}"""


@pytest.mark.parametrize(
    "n_tokens", [2_000, pytest.param(10_000, marks=pytest.mark.slow)], ids=["2k", "10k"]
)
def test_long_dossier_renders_every_chart_within_the_page(tmp_path: Path, n_tokens: int) -> None:
    playwright = pytest.importorskip("playwright.sync_api")
    from render_fixtures import long_result

    out = tmp_path / "site"
    build_site([long_result(n_tokens)], out, failures=[])
    page_file = out / "cases" / "long-case" / "index.html"
    assert page_file.stat().st_size < 4_000_000  # big arrays go to data.json, not the page
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--host-resolver-rules=MAP * ~NOTFOUND"],
        )
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        console: list[str] = []
        page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
        page.goto(page_file.as_uri())
        page.wait_for_function(
            "() => [...document.querySelectorAll('.chart')].every("
            "c => c.querySelector('svg') || c.classList.contains('chart-error'))",
            timeout=60_000,
        )
        state = page.evaluate(WIDTH_CHECK)
        # a link to a token inside a folded block opens the block
        closed = page.evaluate(
            "() => { const d = [...document.querySelectorAll('details.hm-block')]"
            ".find(d => !d.open); return d ? d.querySelector('.hm').id : null; }"
        )
        if closed:
            page.evaluate(
                "(id) => { const a = document.createElement('a'); a.href = '#' + id;"
                " a.textContent = 'x'; document.body.appendChild(a); a.click(); }",
                closed,
            )
            assert page.evaluate(
                "(id) => document.getElementById(id).closest('details').open", closed
            )
        browser.close()
    assert state["charts"] and all(c["svg"] and not c["failed"] for c in state["charts"]), state
    assert console == []
    assert state["scroll"] <= state["page"], state["wide"]
    assert state["wide"] == []
    html = page_file.read_text(encoding="utf-8")
    assert html.count('class="hm-link"') == 20  # the strongest tokens, linked to their place
    assert "<details" in html  # folded by lines
