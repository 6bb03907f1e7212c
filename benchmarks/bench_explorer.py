"""The dossier's graph explorer on a 10,000-token graph, in Chromium: load, click, slider.

    .venv/bin/python benchmarks/bench_explorer.py [--tokens 10000] [--layers 31] [--edges 1500]

Builds a synthetic pruned graph (EDGES random edges per layer transition over TOKENS tokens),
renders its dossier, opens it in the system Chromium (Playwright) and prints the size of the
explorer's embedded data, the nodes and edges drawn (capped by reportgen/render/explorer.py),
the milliseconds from load to a drawn graph, a node click (panel + highlights + paths to the
output) and one step of the weight slider, side by side with the same for the 9-token fixture
graph (goal: a click and a slider step under 50 ms at 10,000 tokens)."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from render_fixtures import make_result, random_graph  # noqa: E402

from reportgen.render.html import render_dossier  # noqa: E402
from reportgen.render.site import write_assets  # noqa: E402
from reportgen.results import CaseResult  # noqa: E402


def big_result(n_tokens: int, n_layers: int, per_layer: int) -> CaseResult:
    texts = [f" w{i}" for i in range(n_tokens)]
    base = make_result("big", texts=texts, relevance=[0.01] * n_tokens, special=[False] * n_tokens)
    graph = random_graph(n_tokens, n_layers, per_layer, tokens=texts)
    return CaseResult(**{**base.__dict__, "graph": graph, "segments": {}})


MEASURE = """() => {
  const out = {};
  const node = document.querySelector('.gx-node.output');
  let t = performance.now();
  node.dispatchEvent(new MouseEvent('click', {bubbles: true}));
  out.click_ms = performance.now() - t;
  const slider = document.getElementById('gx-weight');
  t = performance.now();
  for (let i = 1; i <= 20; i++) { slider.value = String(slider.max * i / 40); slider.dispatchEvent(new Event('input')); }
  out.slider_ms = (performance.now() - t) / 20;
  out.nodes = document.querySelectorAll('.gx-node').length;
  out.edges = document.querySelectorAll('.gx-edge').length;
  return out;
}"""


def measure(browser, path: Path) -> dict[str, float]:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    start = time.perf_counter()
    page.goto(path.as_uri())
    page.wait_for_selector("#graph-explorer[data-ready=yes]", timeout=120_000)
    ready = (time.perf_counter() - start) * 1000
    html = path.read_text(encoding="utf-8")
    begin = html.index('id="graph-explorer-data">')
    data_bytes = html.index("</script>", begin) - begin
    result = {"ready_ms": ready, "data_kb": data_bytes / 1024, **page.evaluate(MEASURE)}
    page.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=10_000)
    parser.add_argument("--layers", type=int, default=31)
    parser.add_argument("--edges", type=int, default=1500, help="edges per layer transition")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    out = Path(tempfile.mkdtemp(prefix="bench-explorer-"))
    write_assets(out / "assets")
    pages = {
        "fixture (9 tokens)": render_dossier(make_result(), out / "cases" / "small", assets_href="../../assets"),
        f"{args.tokens} tokens": render_dossier(
            big_result(args.tokens, args.layers, args.edges), out / "cases" / "big",
            assets_href="../../assets",
        ),
    }  # fmt: skip
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"]
        )
        rows = {name: measure(browser, path) for name, path in pages.items()}
        browser.close()
    keys = ["data_kb", "nodes", "edges", "ready_ms", "click_ms", "slider_ms"]
    print(f"{'graph':>20} " + " ".join(f"{k:>10}" for k in keys))
    for name, row in rows.items():
        print(f"{name:>20} " + " ".join(f"{row[k]:>10.1f}" for k in keys))
    small, big = rows.values()
    print(
        f"ratio big/small: click {big['click_ms'] / max(small['click_ms'], 0.1):.1f}x, "
        f"slider {big['slider_ms'] / max(small['slider_ms'], 0.1):.1f}x"
    )


if __name__ == "__main__":
    main()
