"""The render side of long dossiers: page weight, render time and PDF pages at 2k-16k tokens.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_long_render.py [--tokens 2000 10000 16000]
        [--no-pdf] [--no-browser]

For each size builds the synthetic long dossier of tests/long_render_fixtures.py (real SmolLM2
tokens of Python's argparse.py, a 31-layer pruned graph, the long path's faithfulness; no
model is run), renders it through the real site builder and the real LaTeX figure set, and
prints side by side: seconds for the HTML (site.build_site) and for the figure set
(render_latex: the Vega-Lite PDFs and the one pdflatex run), the dossier page's bytes and its
bytes per token, the downloads' bytes, the PDF's pages and bytes, and, in headless Chromium,
the milliseconds until every chart is drawn. The shortest case (the first size) is the
yardstick: the last column is each size's page weight over it, against the token ratio."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from long_render_fixtures import long_dossier  # noqa: E402

from reportgen.render.latex import render_latex  # noqa: E402
from reportgen.render.site import build_site  # noqa: E402


def browser_ms(page: Path) -> float | None:
    """Milliseconds from navigation to every chart drawn, in the system Chromium."""
    chromium = Path("/usr/bin/chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    if not chromium.exists():
        return None
    html = page.read_text(encoding="utf-8")
    charts = len(re.findall(r'<div class="chart" id="chart-', html))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=["--no-sandbox"])
        tab = browser.new_page(viewport={"width": 1280, "height": 900})
        start = time.perf_counter()
        tab.goto(page.as_uri())
        tab.wait_for_function(
            "n => document.querySelectorAll('.chart svg, .chart-error').length >= n",
            arg=charts,
            timeout=120_000,
        )
        elapsed = (time.perf_counter() - start) * 1000
        browser.close()
    return elapsed


def pdf_pages(pdf: Path) -> int | None:
    try:
        info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True).stdout
    except FileNotFoundError:
        return None
    match = re.search(r"Pages:\s+(\d+)", info)
    return int(match.group(1)) if match else None


def measure(n_tokens: int, out: Path, *, pdf: bool, browser: bool) -> dict[str, float | None]:
    result = long_dossier(n_tokens)
    case = out / "cases" / result.case_id
    row: dict[str, float | None] = {"tokens": n_tokens}
    if pdf:
        start = time.perf_counter()
        compiled = render_latex(result, case / "figures")
        row["pdf_s"] = time.perf_counter() - start
        row["pdf_pages"] = pdf_pages(compiled) if compiled else None
        row["pdf_kb"] = compiled.stat().st_size / 1024 if compiled else None
    start = time.perf_counter()
    build_site([result], out)
    row["html_s"] = time.perf_counter() - start
    page = case / "index.html"
    row["page_kb"] = page.stat().st_size / 1024
    row["bytes_per_token"] = page.stat().st_size / n_tokens
    downloads = [f for f in case.iterdir() if f.is_file() and f.name != "index.html"]
    row["downloads_kb"] = sum(f.stat().st_size for f in downloads) / 1024
    row["charts_ms"] = browser_ms(page) if browser else None
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, nargs="+", default=[2000, 10000, 16000])
    parser.add_argument("--no-pdf", action="store_true")
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args()
    rows = []
    for n in args.tokens:
        with tempfile.TemporaryDirectory(prefix="bench-long-render-") as tmp:
            rows.append(measure(n, Path(tmp), pdf=not args.no_pdf, browser=not args.no_browser))
    cols = [
        "tokens",
        "html_s",
        "page_kb",
        "bytes_per_token",
        "downloads_kb",
        "charts_ms",
        "pdf_s",
        "pdf_pages",
        "pdf_kb",
    ]
    print(" ".join(f"{c:>15}" for c in [*cols, "weight/tokens"]))
    base = rows[0]
    for row in rows:
        cells = []
        for c in cols:
            v = row.get(c)
            cells.append(f"{'-':>15}" if v is None else f"{v:>15.1f}")
        ratio = (row["page_kb"] / base["page_kb"]) / (row["tokens"] / base["tokens"])
        cells.append(f"{ratio:>15.2f}")
        print(" ".join(cells))


if __name__ == "__main__":
    main()
