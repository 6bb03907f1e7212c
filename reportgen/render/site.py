"""The static site: an index like a paper's project page, one dossier per case, shared assets.

Everything is linked relatively, so the output folder can be pushed to GitHub Pages, served by
``reportgen serve`` or opened straight from disk. The Vega runtime is written once into
``assets/`` rather than into every page. LaTeX is not run here: the caller renders the figure
sets (into ``cases/<id>/figures/``) first, and the index links each PDF that exists."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..project import SiteInfo
from ..published import published_result
from ..results import CaseResult
from ..site_links import bring_links, featured_in_build
from . import charts as charts_mod
from .dossier import Dossier
from .extras import asset_tags, copy_extra_assets
from .html import (
    BUNDLE_NAME,
    STYLE_CSS,
    chart_blocks,
    check_case_id,
    environment,
    page_assets,
    render_dossier_page,
    vega_bundle,
)
from .paper import figure_downloads
from .project_page import project_context
from .study import StudyData, persistence_sentence, study_data
from .study_charts import STUDY_CHART_TITLES, study_charts
from .words import bound_words

SITE_TITLE = "Why does the model pick the wrong token?"
SITE_INTRO = (
    "Failure cases of language models, each explained with contrastive AttnLRP attribution: "
    "which input tokens push the model towards the wrong token (red) and which towards the "
    "right one (blue), how the decision flows through the layers, and how faithful the "
    "explanation is. Every case has its own dossier with the numbers and a PDF figure set."
)
INDEX_CHART_TITLES = {
    "benchmarks": ("Cases per benchmark", "Number of cases with each benchmark tag."),
    "models": (
        "Explained value across models",
        "One dot per case; f > 0 means the wrong token wins.",
    ),
    "comparison": (
        "Same case, other model",
        "Explained value on the case's model (x) against a compared model (y); dashed: y = x.",
    ),
    "outcomes": ("Benchmark outcomes", "Items that passed and failed in each benchmark run."),
}


def write_assets(assets_dir: Path) -> Path:
    """Copy the stylesheet and write the Vega runtime once for every page of the site."""
    assets_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(STYLE_CSS, assets_dir / "style.css")
    copy_extra_assets(assets_dir)
    (assets_dir / BUNDLE_NAME).write_text(vega_bundle(), encoding="utf-8")
    return assets_dir


def _flip_k(result: CaseResult) -> Any:
    if result.faithfulness is None:
        return None
    return result.faithfulness.flip_k.get("attnlrp")


def _flip_bound(result: CaseResult) -> str:
    """The range of a flip-k that the model's compute budget left unscanned, in words."""
    bounds = result.faithfulness.flip_bounds if result.faithfulness is not None else {}
    return bound_words(bounds["attnlrp"]) if "attnlrp" in bounds else ""


def _row(result: CaseResult, out_dir: Path) -> dict[str, Any]:
    case_dir = f"cases/{result.case_id}"
    pdf = Path(case_dir) / "figures" / f"{result.case_id}.pdf"
    zipped = Path(case_dir) / "figures" / "figures.zip"  # the paper figures
    benchmark = result.tags.get("benchmark")
    pattern = result.tags.get("pattern")
    search = " ".join([result.case_id, result.title, result.model, *result.tags.values()]).lower()
    return {
        "id": result.case_id,
        "title": result.title,
        "href": f"{case_dir}/index.html",
        "model": result.model,
        "benchmark": benchmark,
        "pattern": pattern,
        "explained": result.attribution.explained,
        "contrast": result.attribution.contrast is not None,
        "has_faithfulness": result.faithfulness is not None,
        "flip_k": _flip_k(result),
        "flip_bound": _flip_bound(result),
        "pdf_href": pdf.as_posix() if (out_dir / pdf).is_file() else None,
        "zip_href": zipped.as_posix() if (out_dir / zipped).is_file() else None,
        "search": search,
    }


def _summary(s: dict[str, Any]) -> dict[str, Any]:
    keys = ("items", "passed", "failed", "pinned", "unpinned")
    return {"benchmark": str(s["benchmark"]), **{k: s.get(k, 0) for k in keys}}


def _study(study: StudyData, out_dir: Path) -> dict[str, Any]:
    """The study's numbers as the index's tables show them, and its paper-figure downloads."""
    summary = study.summary
    return {
        "funnel": [asdict(r) for r in study.funnel],
        "persistence": [
            {
                "case": row.case_id,
                "href": f"cases/{row.case_id}/index.html",
                "models": [
                    {
                        "model": m,
                        "explained": f,
                        "segments": [{"name": k, "value": v} for k, v in seg.items()],
                    }
                    for m, f, seg in zip(
                        row.models,
                        row.explained,
                        row.segments or [{}] * len(row.models),
                        strict=True,
                    )
                ],
                "outcome": "persists" if row.explained[-1] > 0 else "fixed",
            }
            for row in study.persistence
        ],
        "persistence_models": [{"model": m, **entry} for m, entry in summary["models"].items()],
        "persistence_sentence": persistence_sentence(summary),
        "downloads": figure_downloads(out_dir / "figures", "figures"),
    }


def build_site(
    results: list[CaseResult],
    out_dir: Path,
    *,
    failures: list[tuple[str, str]] = (),
    summaries: list[dict] = (),
    single_file: bool = False,
    on_error: Callable[[CaseResult, Exception], str] | None = None,
    site_info: SiteInfo | None = None,
    project_file: str | None = None,
    case_ids: set[str] | None = None,
    standalone: bool = False,
    page_parts: Mapping[str, Dossier] | None = None,
) -> Path:
    """Write the whole site into ``out_dir`` and return the path of its index.html.

    ``failures`` are (case file, reason) pairs of cases that could not be computed; they are
    listed on the index so a partial build never hides what is missing. ``summaries`` are
    per-benchmark outcome counts. With ``single_file`` every dossier inlines its assets. With
    ``on_error`` a dossier that cannot be rendered is left out and listed with the reason
    ``on_error`` returns, instead of sinking the site (``build --keep-going``).
    ``site_info`` (the project file's ``[site]``, read from ``project_file``) turns the index
    into a project page; its featured ids must be among ``case_ids`` (every case of the build,
    computed or failed; default: the results' ids). With ``single_file`` the downloads are
    embedded in each page too; ``standalone``: the dossiers travel alone (no "All cases" link).
    ``page_parts``: cells and charts by case id that the caller drew already (for the PDF)."""
    page_parts = page_parts or {}
    out_dir = Path(out_dir)
    results = [published_result(r) for r in results]  # no local path in a published file
    seen: set[str] = set()
    for result in results:
        check_case_id(result.case_id)
        if result.case_id in seen:
            raise ValueError(f"two results share the case id {result.case_id!r}")
        seen.add(result.case_id)
    results = sorted(results, key=lambda r: r.case_id)
    if site_info is not None:
        site_info = featured_in_build(site_info, project_file, seen | (case_ids or set()))

    out_dir.mkdir(parents=True, exist_ok=True)
    write_assets(out_dir / "assets")
    (out_dir / ".nojekyll").write_text("", encoding="utf-8")
    rendered = []
    for result in results:
        try:
            render_dossier_page(
                result,
                out_dir / "cases" / result.case_id,
                single_file=single_file,
                assets_href="../../assets",
                index_href=None if standalone else "../../index.html",
                embedded_downloads=single_file,
                page_parts=page_parts.get(result.case_id),
            )
        except Exception as exc:
            if on_error is None:
                raise
            shutil.rmtree(out_dir / "cases" / result.case_id, ignore_errors=True)
            failures = [*failures, (result.case_file, on_error(result, exc))]
            continue
        rendered.append(result)
    results = rendered
    if site_info is not None:
        # relative links of the project file: copied into the site, or an error on the field
        site_info = bring_links(site_info, project_file, out_dir)

    charts = {"benchmarks": charts_mod.benchmark_counts_chart(results)} if results else {}
    if results:
        charts["models"] = charts_mod.logit_diff_chart(results)
    scatter = charts_mod.comparison_scatter(results)
    if scatter is not None:
        charts["comparison"] = scatter
    outcomes = charts_mod.summaries_chart(list(summaries))
    if outcomes is not None:
        charts["outcomes"] = outcomes
    study = study_data(results, list(summaries))
    charts.update(study_charts(study))
    blocks, specs = chart_blocks(charts, {**INDEX_CHART_TITLES, **STUDY_CHART_TITLES})

    rows = [_row(r, out_dir) for r in results]
    project = None
    if site_info is not None:
        project = project_context(site_info, results, {row["id"]: row["href"] for row in rows})
    title = (project["title"] if project is not None else "") or SITE_TITLE
    site = {
        "title": title,
        "intro": SITE_INTRO,
        "rows": rows,
        "n_cases": len(results),
        "n_models": len({r.model for r in results}),
        "n_benchmarks": len({r.tags.get("benchmark", "untagged") for r in results}),
        "has_flip": any(r["has_faithfulness"] for r in rows),
        "failures": [{"file": str(f), "reason": str(reason)} for f, reason in failures],
        "summaries": [_summary(s) for s in summaries],
        "study": _study(study, out_dir),
    }
    page = {
        "title": f"{title} \u2014 reportgen",
        "index_href": None,
        "chart_specs": specs,
        "extra": asset_tags(
            ("project.css", "project.js") if project is not None else (),
            single_file=single_file,
            assets_href="assets",
        ),
        **page_assets(single_file=single_file, assets_href="assets"),
    }
    html = (
        environment()
        .get_template("index.html.j2")
        .render(page=page, site=site, charts=blocks, project=project)
    )
    index = out_dir / "index.html"
    index.write_text(html, encoding="utf-8")
    return index
