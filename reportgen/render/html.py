"""The dossier: one self-describing HTML page per case, plus the numbers behind it.

Templates only ever receive plain data (dicts, lists, strings, numbers) prepared here, through a
jinja2 environment with autoescape and StrictUndefined. Chart specs travel as JSON inside a
``<script type="application/json">`` block whose ``<``, ``>`` and ``&`` are written as JSON
``\\u`` escapes, so no token or prompt (``</script>``, ``<!--``) can end the block early. The Vega
runtime is a local asset (or inlined), never a CDN: the page must work offline."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from ..results import CaseResult
from . import charts as charts_mod
from .circuits import circuit_context
from .data_files import write_data_files
from .dossier import Dossier, dossier
from .explorer import explorer_data
from .extras import EXPLORER_ASSETS, asset_tags
from .heatmap import (
    FOLD_LIMIT,
    OPEN_BLOCKS_WITH_TOP,
    STRONGEST_LIST,
    heatmap_blocks,
    heatmap_cell,
)
from .names import SAFE_NAME, RenderError, check_case_id  # noqa: F401  (RenderError: for users)
from .summary import (
    capitalised,
    collected_outputs,
    conservation_note,
    explain,
    glossary_entries,
    shown_metrics,
    summary,
)
from .tokens import TokenCell, token_cells, visible_controls, visible_text
from .words import ORDERING_NAMES, bound_words, budget_words, flip_sentence, pattern_with_reason

# package data: a wheel installed outside the source tree renders as well as a checkout
TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
ASSETS_DIR = Path(__file__).resolve().parent / "assets"
STYLE_CSS = ASSETS_DIR / "style.css"
BUNDLE_NAME = "vega-bundle.js"

# --- safe embedding ---------------------------------------------------------------------------

_JSON_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


def script_json(data: Any) -> Markup:
    """JSON that is safe verbatim inside a <script> element (and still valid JSON).

    ``<`` can only occur inside JSON strings, where ``\\u003c`` means the same character; with it
    gone, neither ``</script>`` nor ``<!--`` can appear in the element's text."""
    text = json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    for char, escape in _JSON_ESCAPES.items():
        text = text.replace(char, escape)
    return Markup(text)


def inline_script(js: str) -> Markup:
    """A trusted script (the Vega bundle) made safe to inline: no early ``</script``."""
    js = re.sub(r"</(script)", r"<\\/\1", js, flags=re.IGNORECASE)
    return Markup(js.replace("<!--", "<\\!--"))


def inline_style(css: str) -> Markup:
    return Markup(re.sub(r"</(style)", r"<\\/\1", css, flags=re.IGNORECASE))


@cache
def vega_bundle() -> str:
    """The vega + vega-lite + vega-embed runtime, built offline by vl-convert (~0.9 MB).

    Bundling takes ~5 s, so the result is kept in the reportgen cache, one sealed entry per
    vl-convert version (the bundle only changes with it): a truncated or edited entry fails its
    checksum and is bundled again with one warning line, as every other cache entry."""
    import vl_convert

    from .. import cache_files
    from ..errors import warn
    from ..models import cache_dir  # the cache's place; imported here, as the bundle is rare

    key = f"vega-bundle-{vl_convert.__version__}"
    cached = cache_dir() / "assets" / f"{key}.json"
    if cached.exists() or cached.is_symlink():
        try:
            return str(cache_files.read_sealed(cached, "vega-bundle", key))
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            warn(f"damaged cache entry {cached} ({exc}); bundling the chart runtime again")
    bundle = vl_convert.javascript_bundle()
    cache_files.write_sealed(cached, "vega-bundle", key, bundle)  # a read-only cache: one warning
    return bundle


def stylesheet() -> str:
    return STYLE_CSS.read_text(encoding="utf-8")


# --- jinja ------------------------------------------------------------------------------------


def _num(value: float | int | None, digits: int = 4, signed: bool = False) -> str:
    if value is None:
        return "\u2014"
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return f"{value:{'+' if signed else ''}.{digits}g}"


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


#: below this logit difference the model is nearly indifferent between target and contrast
#: (the original study's clean-case threshold)
NEAR_TIE = 1.0


def near_tie(explained: float | None) -> str:
    """Words for a contrast case whose f = logit(target) - logit(contrast) is under 1 in size
    ("" otherwise): such a case explains a weak preference, and the page says so."""
    if explained is None or abs(explained) >= NEAR_TIE:
        return ""
    return f"near-tie: |f| < {NEAR_TIE:g}, the model barely prefers one token"


def _bytecode_cache() -> jinja2.BytecodeCache | None:
    """Compiled templates kept in the cache folder (keyed by each template's source checksum,
    so an edited template compiles anew): compiling the page templates is about 0.3 s of every
    cold `run`, a fair part of a quick-mode dossier. None where the folder cannot be made."""
    from ..models import cache_dir  # the cache's place, as for the chart runtime

    folder = cache_dir() / "templates"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return jinja2.FileSystemBytecodeCache(str(folder))


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        bytecode_cache=_bytecode_cache(),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        # every {{ value }} of every page: hidden characters show as U+XXXX (tokens.py)
        finalize=lambda v: visible_controls(v) if type(v) is str else v,
    )
    env.filters["num"] = _num
    env.filters["pct"] = _pct
    env.filters["near_tie"] = near_tie
    return env


def page_assets(*, single_file: bool, assets_href: str) -> dict[str, Any]:
    """CSS and Vega runtime for a page: inlined (single file) or linked from the site assets."""
    if single_file:
        return {
            "css_inline": inline_style(stylesheet()),
            "css_href": None,
            "bundle_inline": inline_script(vega_bundle()),
            "bundle_href": None,
        }
    base = assets_href.rstrip("/")
    return {
        "css_inline": None,
        "css_href": f"{base}/style.css",
        "bundle_inline": None,
        "bundle_href": f"{base}/{BUNDLE_NAME}",
    }


def chart_blocks(
    charts: Mapping[str, Any], titles: Mapping[str, tuple[str, str]]
) -> tuple[list[dict[str, str]], Markup]:
    """Chart placeholders for the template and the JSON of their specs, keyed by element id."""
    blocks, specs = [], {}
    for name, chart in charts.items():
        element_id = f"chart-{name}"
        title, caption = titles.get(name, (name, ""))
        blocks.append({"id": element_id, "name": name, "title": title, "caption": caption})
        # validated by the chart tests; skipping jsonschema here makes a page ~10x faster
        specs[element_id] = _visible_strings(chart.to_dict(validate=False))
    return blocks, script_json(specs)


def _visible_strings(value: Any) -> Any:
    """Chart labels and tooltips (model names, tags, tokens) with hidden characters as U+XXXX."""
    if isinstance(value, str):
        return visible_controls(value)
    if isinstance(value, list):
        return [_visible_strings(v) for v in value]
    if isinstance(value, dict):
        return {k: _visible_strings(v) for k, v in value.items()}
    return value


# --- the dossier ------------------------------------------------------------------------------


def _score(score: Any) -> dict[str, Any] | None:
    if score is None:
        return None
    return {
        "text": score.text,
        "display": visible_text(score.text),
        "token": score.token,
        "id": score.id,
        "logit": score.logit,
        "prob": score.prob,
        "first_subtoken_of": score.first_subtoken_of,
    }


def _plain(value: Any) -> str:
    return (
        value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False)
    )


#: the strongest input tokens the summary at the top of a dossier names
SUMMARY_TOKENS = 3


def dossier_context(result: CaseResult, cells: Sequence[TokenCell] | None = None) -> dict[str, Any]:
    """Everything the dossier template shows, as plain data (``cells``: the result's token
    cells when the caller has them)."""
    att = result.attribution
    all_cells = token_cells(att) if cells is None else cells
    folded = len(all_cells) > FOLD_LIMIT
    strongest = charts_mod.strongest_tokens(all_cells, STRONGEST_LIST)
    top = {c.position for c in strongest[:OPEN_BLOCKS_WITH_TOP]}
    cells = [] if folded else [heatmap_cell(c) for c in all_cells]
    blocks = heatmap_blocks(all_cells, top) if folded else []
    strongest_rows = [
        {
            "id": f"tok-{c.position}",
            "position": c.position,
            "display": c.display,
            "relevance": c.relevance,
            "background": c.color.background_hex,
            "foreground": c.color.foreground_hex,
        }
        for c in strongest
    ]
    faith = None
    flip = ""
    f = result.faithfulness
    if f is not None:
        flip = flip_sentence(f, att.token_texts)
        faith = {
            "sentence": capitalised(flip),
            "flip_k": [
                {
                    "ordering": k,
                    "name": ORDERING_NAMES.get(k, k),
                    "value": v,
                    "bound": bound_words(f.flip_bounds[k]) if k in f.flip_bounds else "",
                }
                for k, v in f.flip_k.items()
            ],
            "budget": budget_words(f),
            "aopc": [{"ordering": k, "value": v} for k, v in f.aopc.items()],
            "mask": f.mask or "",
            "points": ", ".join(str(k) for k in f.points or []),
            "pattern": pattern_with_reason(f.failure_pattern) if f.failure_pattern else None,
            "label": result.tags.get("pattern", ""),
        }
    neurons = None
    if result.neurons:
        neurons = [
            {
                "layer": n.layer,
                "position": n.position,
                "token": visible_text(n.token),
                "relevance": n.relevance,
                "dimensions": [{"index": t.index, "relevance": t.relevance} for t in n.dimensions],
                "mlp": [{"index": t.index, "relevance": t.relevance} for t in n.mlp_neurons or ()],
                "mlp_relevance": n.mlp_relevance,
            }
            for n in result.neurons
        ]
    comparisons = None
    if result.comparisons:
        comparisons = [
            {
                "model": c.model,
                "explained": c.explained,
                "target_logit": c.target_logit,
                "contrast_logit": c.contrast_logit,
            }
            for c in result.comparisons
        ]
    top_rows = [
        {
            "id": f"tok-{c.position}",
            "position": c.position,
            "display": c.display,
            "relevance": c.relevance,
            "background": c.color.background_hex,
            "foreground": c.color.foreground_hex,
        }
        for c in strongest[:SUMMARY_TOKENS]
    ]
    return {
        "summary": summary(result, flip, top_rows),
        "outputs": collected_outputs(result),
        "metrics_shown": shown_metrics(result),
        "conservation_note": conservation_note(att.relevance_sum, att.explained)
        if att.conservation is not None
        else "",
        "quick_mode": quick_mode_words(result),
        "id": result.case_id,
        "title": result.title,
        "description": result.description,
        "model": result.model,
        "prompt": result.prompt,
        "prefix": result.prefix,
        "chat": result.chat,
        # a tag with no value ("pattern" of a collected case before anyone labels it) is not shown
        "tags": [{"key": k, "value": v} for k, v in result.tags.items() if str(v).strip()],
        "objective": att.objective,
        "mode": att.mode,
        "strategy": att.strategy,
        "explained": att.explained,
        "relevance_sum": att.relevance_sum,
        "conservation": att.conservation,
        "target": _score(att.target),
        "contrast": _score(att.contrast),
        "top_k": [
            dict(
                _score(s) or {},
                rank=i + 1,
                is_target=s.id == att.target.id,
                is_contrast=att.contrast is not None and s.id == att.contrast.id,
            )
            for i, s in enumerate(att.top_k)
        ],
        "notes": list(att.notes),
        "tokens": cells,
        "blocks": blocks,
        "strongest": strongest_rows if len(all_cells) > charts_mod.PER_TOKEN_LIMIT else [],
        "n_tokens": len(all_cells),
        "faithfulness": faith,
        "neurons": neurons,
        "comparisons": comparisons,
        "environment": [
            {"key": k, "value": _plain(result.environment[k])} for k in sorted(result.environment)
        ],
    }


#: what quick mode's skipped steps mean, in words (the dossier's quick-mode note)
QUICK_MODE_SKIPS = {
    "faithfulness": "the faithfulness test (deletion curves, flip-k, AOPC, failure-pattern hint)",
    "interventions": "the interventions (graph nodes ablated) and the greedy continuations",
}


def quick_mode_words(result: CaseResult) -> str:
    """The dossier's note on a quick-mode (``--fast``) result: what was skipped ("" else)."""
    skipped = result.environment.get("quick_mode_skipped")
    if not skipped:
        return ""
    names = [QUICK_MODE_SKIPS.get(str(s), str(s)) for s in skipped]
    return (
        f"{'; '.join(names)} skipped. Attribution, graph and metrics are the full build's "
        "numbers; build without --fast for the rest."
    )


def _with_pdf_note(case: dict[str, Any], downloads: list[dict[str, str]]) -> dict[str, Any]:
    """A quick-mode dossier without a figure set says so too."""
    if case["quick_mode"] and not any(d["label"].endswith(".pdf") for d in downloads):
        case["quick_mode"] += " No PDF figure set either (--pdf makes one)."
    return case


def embed_downloads(downloads: list[dict[str, str]], out_dir: Path) -> list[dict[str, str]]:
    """The downloads as in-page files: each link points at a fragment of the page, whose
    ``<script type="application/octet-stream">`` holds the file as base64, saved by a click
    (a Blob), so a page that travels alone keeps working downloads and no relative link."""
    import base64
    import mimetypes

    embedded = []
    for index, d in enumerate(downloads):
        data = (out_dir / d["href"]).read_bytes()
        mime = mimetypes.guess_type(d["label"])[0] or "application/octet-stream"
        embedded.append(
            {
                **d,
                "href": f"#download-{index}",
                "embedded": f"download-{index}",
                "mime": mime,
                "base64": base64.b64encode(data).decode("ascii"),
            }
        )
    return embedded


def render_dossier_page(
    result: CaseResult,
    out_dir: Path,
    *,
    single_file: bool = False,
    assets_href: str = "../assets",
    index_href: str | None = None,
    embedded_downloads: bool = False,
    page_parts: Dossier | None = None,
) -> Path:
    """:func:`render_dossier` with a link back to the site's index (used by the site builder).
    ``embedded_downloads``: the data files inside the page (:func:`embed_downloads`);
    ``page_parts``: the result's cells and charts (:func:`dossier.dossier`) when the caller has
    them already (the build draws them once for the PDF and the page)."""
    parts = page_parts if page_parts is not None else dossier(result)
    check_case_id(result.case_id)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    downloads = write_data_files(result, out_dir)
    if embedded_downloads:
        downloads = embed_downloads(downloads, out_dir)
    blocks, specs = chart_blocks(
        {c.name: c.chart for c in parts.charts},
        {c.name: (c.title, c.caption) for c in parts.charts},
    )
    sections: dict[str, list[dict[str, str]]] = {}
    for block, drawn in zip(blocks, parts.charts, strict=True):
        sections.setdefault(drawn.section, []).append(block)
    explorer = explorer_data(result)  # the interactive graph (replaces the Vega graph chart)
    page = {
        "title": f"{result.title} \u2014 reportgen dossier",
        "index_href": index_href,
        "chart_specs": specs,
        "extra": asset_tags(
            EXPLORER_ASSETS if explorer is not None else (),
            single_file=single_file,
            assets_href=assets_href,
        ),
        **page_assets(single_file=single_file, assets_href=assets_href),
    }
    html = (
        environment()
        .get_template("dossier.html.j2")
        .render(
            page=page,
            case=_with_pdf_note(dossier_context(result, parts.cells), downloads),
            charts=sections,
            downloads=downloads,
            explorer=explorer,
            glossary=glossary_entries(result),
            explain=explain,
            explorer_json=script_json(explorer) if explorer is not None else None,
            circuit=circuit_context(result),
        )
    )
    path = out_dir / "index.html"
    path.write_text(html, encoding="utf-8")
    return path


def render_dossier(
    result: CaseResult, out_dir: Path, *, single_file: bool = False, assets_href: str = "../assets"
) -> Path:
    """Write out_dir/index.html (the dossier) with data.json, relevance.csv and the case file.

    With ``single_file`` the stylesheet and the Vega runtime are inlined, so the one .html file
    can be attached to a bug report and opened offline; otherwise they are linked from
    ``assets_href`` (the site writes them once for all cases)."""
    return render_dossier_page(result, out_dir, single_file=single_file, assets_href=assets_href)
