"""The explorer's hypothesis panel in a real browser (the system Chromium, as
test_browser_interactive drives it): after explaining, pick the pinned nodes from the dossier's
URL fragment, mask a token, run, see f, the top-k and the continuation before and after; save
the case with its pins."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from test_browser_interactive import CHROMIUM, browser, explore_server, open_page

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium missing")
__all__ = ["browser", "explore_server"]  # the fixtures, shared with the explorer's other tests


def test_the_probe_panel_ablates_pinned_nodes_masks_tokens_and_saves_pins(
    browser, explore_server
) -> None:
    url, _, cases, _ = explore_server
    context, page, errors = open_page(browser, url + "/")
    favicon: list[str] = []  # the browser asks this server for /favicon.ico: a 404 it logs
    page.on(
        "console",
        lambda m: favicon.append(m.text) if m.location["url"].endswith("/favicon.ico") else None,
    )
    try:
        page.fill("#ex-prompt", "list three primary colors")
        page.check("#ex-chat")  # its markers are special tokens: never masked
        page.click("#ex-predict")
        page.wait_for_selector("#ex-topk tbody tr")
        page.fill("#ex-target", "green")
        page.fill("#ex-contrast", "red")
        page.click("#ex-explain")
        page.wait_for_selector("#ex-result:not([hidden])", timeout=120_000)
        page.wait_for_selector("#ex-nodes button")
        first = page.get_attribute("#ex-nodes button", "data-node")  # e.g. "0:3"
        # pin the node in the dossier's own graph explorer (Ctrl-click) and group it with a
        # label: the explorer writes both into its URL fragment, where the panel reads them
        frame = page.locator("#ex-view").element_handle().content_frame()
        frame.wait_for_selector("#graph-explorer[data-ready=yes]", timeout=60_000)
        names = frame.evaluate(
            "JSON.parse(document.getElementById('graph-explorer-data').textContent).layers"
        )
        layer, position = first.split(":")
        node_id = f"n{names.index(layer)}-{position}"
        frame.click(f"#gx-{node_id}", modifiers=["Control"])
        assert frame.get_attribute("#graph-explorer", "data-pinned") == node_id
        frame.check(f'#gx-units li[data-node="{node_id}"] input.gx-tick')
        frame.click("#gx-group")
        page.keyboard.press("Control+a")  # the new label field has the focus
        page.keyboard.type("strongest")
        page.keyboard.press("Enter")
        frame.evaluate("document.activeElement.blur()")
        assert frame.evaluate("location.hash").startswith("#graph:pinnedIds=" + node_id)
        page.click("#ex-use-pinned")
        assert page.input_value("#ex-ablate") == first
        token = page.locator("#ex-tokens button:not([disabled])").last
        token.click()
        assert token.get_attribute("aria-pressed") == "true"
        assert page.locator("#ex-tokens button[disabled]").count() >= 2  # the chat markers
        page.click("#ex-run")
        page.wait_for_selector("#ex-probe-result:not([hidden])", timeout=60_000)
        summary = page.inner_text("#ex-probe-summary")
        assert summary.startswith("1 nodes ablated (mean), 1 tokens masked (zero)"), summary
        f_clean = float(page.inner_text("#ex-f-clean"))
        f_after = float(page.inner_text("#ex-f-after"))
        assert f_clean != f_after
        assert page.locator("#ex-top-clean li").count() == 10
        assert page.locator("#ex-top-after li").count() == 10
        assert page.inner_text("#ex-cont-clean").strip() != ""
        # the same numbers as the API gives for the same request
        api = page.evaluate(
            """body => fetch('/api/intervene', {method: 'POST', body: JSON.stringify(body),
                 headers: {'Content-Type': 'application/json', 'X-Reportgen-Token':
                 document.querySelector('meta[name=reportgen-token]').content}})
                 .then(r => r.json())""",
            {
                "prompt": "list three primary colors",
                "target": "green",
                "contrast": "red",
                "chat": True,
                "prefix": "",
                "ablate": [first],
                "mask": [int(token.get_attribute("data-position"))],
            },
        )
        assert f_after == pytest.approx(api["after"]["f"], rel=1e-5)
        assert f_clean == pytest.approx(api["clean"]["f"], rel=1e-5)
        # Save as case keeps the pinned node and its group
        page.fill("#ex-id", "browser-pinned")
        page.click("#ex-save")
        page.wait_for_selector("#ex-saved:not([hidden])")
        assert "with 1 pinned nodes and 1 groups" in page.inner_text("#ex-saved-path")
        graph = tomllib.loads((Path(cases) / "browser-pinned.toml").read_text())["graph"]
        assert graph["pinned"] == [[layer, int(position)]]
        assert graph["supernodes"] == [{"label": "strongest", "nodes": [[layer, int(position)]]}]
        assert [e for e in errors if e not in favicon] == []
    finally:
        context.close()
