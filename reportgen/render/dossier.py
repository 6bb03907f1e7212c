"""One case's dossier parts, computed once for every renderer of the case.

A dossier is shown twice: as a web page (``html``) and as a PDF figure set (``latex``, with the
paper figures of ``paper``). Both show the same token cells and the same charts, so both are
computed here, once per case (:func:`dossier`), and handed to each renderer.

:data:`DOSSIER_CHARTS` is the one chart registry: a new chart is one entry (name, the function
that draws it, title, caption, the dossier section it belongs to), and the web page and the
PDF pick it up with its words. The index page's charts are the site's own (``site``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..results import CaseResult
from . import charts
from .tokens import TokenCell, token_cells

#: a chart function: the result and its token cells -> a chart, or None without the data
DrawChart = Callable[[CaseResult, Sequence[TokenCell]], Any]


@dataclass(frozen=True)
class ChartKind:
    """One entry of the chart registry. ``long_title``/``long_caption``: the words for an input
    of more than ``charts.PER_TOKEN_LIMIT`` tokens, where the chart draws something else (the
    relevance chart: the strongest tokens and binned sums, not one bar per token); the caption
    may name ``{top}`` (``charts.TOP_TOKENS``) and ``{n}`` (the input's token count)."""

    name: str  # stable: the element id (chart-<name>) and the PDF's file name (<id>-<name>.pdf)
    draw: DrawChart
    title: str
    caption: str
    section: str  # the dossier section the web page shows it in
    long_title: str = ""
    long_caption: str = ""

    def words(self, n_tokens: int) -> tuple[str, str]:
        """(title, caption) for an input of ``n_tokens`` tokens."""
        if n_tokens > charts.PER_TOKEN_LIMIT and self.long_title:
            caption = self.long_caption.format(top=charts.TOP_TOKENS, n=f"{n_tokens:,}")
            return self.long_title, caption
        return self.title, self.caption


DOSSIER_CHARTS: tuple[ChartKind, ...] = (
    ChartKind(
        "relevance",
        lambda result, cells: charts.relevance_chart(result, cells),
        "Relevance per token",
        "Input relevance R of every token; special tokens grey, cut at the axis when they "
        "exceed the range of the other tokens.",
        "heatmap",
        long_title="Relevance: strongest tokens and overview",
        long_caption="The {top} tokens with the largest |R| (position and token), then the "
        "whole input of {n} tokens in bins of consecutive positions: per bin the sum of the "
        "positive and of the negative R (special tokens left out). Every token is in the "
        "heatmap above and in relevance.csv.",
    ),
    ChartKind(
        "segments",
        lambda result, cells: charts.segments_chart(result),
        "Segment breakdown",
        "Sum of relevance over each named span of the input.",
        "heatmap",
    ),
    ChartKind(
        "layers",
        lambda result, cells: charts.layer_sums_chart(result),
        "Relevance per layer",
        "Sum of node relevance in each layer of the graph.",
        "graph",
    ),
    ChartKind(
        "metrics",
        lambda result, cells: charts.metrics_chart(result),
        "Graph metrics",
        "Per layer of the pruned graph, from the input embeddings (emb) to the last layer.",
        "metrics",
    ),
    ChartKind(
        "faithfulness",
        lambda result, cells: charts.faithfulness_chart(result),
        "Deletion curves",
        "Explained value f after masking the k most relevant tokens of each ordering; "
        "below the dashed line the preference has flipped.",
        "faithfulness",
    ),
    ChartKind(
        "comparison",
        lambda result, cells: charts.comparison_chart(result),
        "Across models",
        "The explained value of this case on each model.",
        "comparison",
    ),
    ChartKind(
        "comparison-segments",
        lambda result, cells: charts.comparison_segments_chart(result),
        "Segments across models",
        "Segment sums on each model.",
        "comparison",
    ),
)


@dataclass(frozen=True)
class DossierChart:
    """A drawn chart of one case, with its registry entry's words for this case."""

    name: str
    title: str
    caption: str
    section: str
    chart: Any  # an Altair chart: ``chart.to_dict()`` is its Vega-Lite spec


@dataclass(frozen=True)
class Dossier:
    """What every renderer of one case shows: the token cells and the charts with data."""

    result: CaseResult
    cells: tuple[TokenCell, ...]
    charts: tuple[DossierChart, ...]


def dossier(result: CaseResult) -> Dossier:
    """The token cells and every chart the case has data for, in registry order."""
    cells = tuple(token_cells(result.attribution))
    drawn = []
    for kind in DOSSIER_CHARTS:
        chart = kind.draw(result, cells)
        if chart is not None:
            title, caption = kind.words(len(cells))
            drawn.append(DossierChart(kind.name, title, caption, kind.section, chart))
    return Dossier(result, cells, tuple(drawn))
