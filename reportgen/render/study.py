"""The numbers of the project page's study: what all cases and benchmark runs say together.

* the collect funnel per benchmark and model: items -> failed -> clean failures -> pinned, from
  every ``summary.json`` that ``reportgen collect`` wrote (:func:`funnel_rows`);
* the failure patterns (URT / OIT / both / none) per benchmark, from the cases that mark their
  relevant spans (:func:`pattern_counts`);
* layer-wise graph-metric profiles per group (benchmark, model): mean and spread (min-max)
  over the group's cases at each relative depth (:func:`metric_profiles`);
* where cases carry ``compare``: f of the same failure on every model, weaker to stronger
  (by the parameter count in the model's name), whether it persists (f > 0: the model still
  prefers the wrong token) or is fixed, and the share that persists (:func:`persistence`).

The numbers are computed once here (:func:`study_data`); the index draws them with Altair
(:mod:`reportgen.render.study_charts`), and :mod:`reportgen.render.study_paper` typesets them
as paper figures (pgfplots, one pdflatex run) with a site-level ``figures.tex`` whose labels
start with ``fig:study:``."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ..results import CaseResult
from .tokens import segment_sums

PATTERNS = ("URT", "OIT", "URT+OIT", "none")
PROFILE_METRICS = ("gini_relevance", "verticality", "local_ratio", "nodes")
FUNNEL_STAGES = ("items", "failed", "clean", "pinned")
FUNNEL_WORDS = {
    "items": "items",
    "failed": "failed",
    "clean": "clean failures",
    "pinned": "pinned cases",
}


# --- the numbers --------------------------------------------------------------------------------


@dataclass(frozen=True)
class FunnelRow:
    benchmark: str
    model: str
    items: int
    failed: int
    clean: int  # failed, less the greedy outputs that are no clean failure
    pinned: int


def _count(value: Any) -> int:
    if isinstance(value, list | dict):
        return len(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    return int(value)


def funnel_rows(summaries: Sequence[dict[str, Any]]) -> list[FunnelRow]:
    """One row per summary.json: the funnel's counts (from its ``funnel`` table, else the
    top-level counts), sorted by benchmark and model."""
    rows = []
    for s in summaries:
        funnel = s.get("funnel") if isinstance(s.get("funnel"), dict) else {}
        items = _count(funnel.get("items", s.get("items")))
        failed = _count(funnel.get("failed", s.get("failed")))
        not_clean = funnel.get("not_clean_failure") or {}
        dropped = sum(_count(v) for v in not_clean.values()) if isinstance(not_clean, dict) else 0
        rows.append(
            FunnelRow(
                benchmark=str(s.get("benchmark", "")),
                model=str(s.get("model", "")),
                items=items,
                failed=failed,
                clean=max(0, failed - dropped),
                pinned=_count(funnel.get("pinned", s.get("pinned"))),
            )
        )
    return sorted(rows, key=lambda r: (r.benchmark, r.model))


def pattern_counts(results: Sequence[CaseResult]) -> dict[str, dict[str, int]]:
    """Per benchmark tag, how many cases show each failure pattern (cases that mark no
    relevant span have none and are left out)."""
    counts: dict[str, dict[str, int]] = {}
    for r in sorted(results, key=lambda r: r.case_id):
        found = r.faithfulness.failure_pattern if r.faithfulness is not None else None
        pattern = found.pattern if found is not None else None
        if pattern not in PATTERNS:
            continue
        bench = r.tags.get("benchmark", "untagged")
        counts.setdefault(bench, dict.fromkeys(PATTERNS, 0))[pattern] += 1
    return dict(sorted(counts.items()))


@dataclass(frozen=True)
class Profile:
    benchmark: str
    model: str
    cases: int
    depth: tuple[float, ...]  # relative depth of each layer: 0 first, 1 last
    mean: tuple[float, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]


def profile_metric(results: Sequence[CaseResult]) -> str | None:
    """The metric the profiles show: the first of :data:`PROFILE_METRICS` every case has."""
    rows = [r.metrics for r in results if r.metrics]
    for name in PROFILE_METRICS:
        if rows and all(isinstance(getattr(m[0], name), int | float) for m in rows):
            return name
    return None


def metric_profiles(results: Sequence[CaseResult], metric: str) -> list[Profile]:
    """Per (benchmark, model): the metric at each layer, mean, min and max over the cases
    (cases of one model share its layers)."""
    groups: dict[tuple[str, str], list[list[float]]] = {}
    for r in sorted(results, key=lambda r: r.case_id):
        if not r.metrics:
            continue
        values = [float(getattr(m, metric, math.nan)) for m in r.metrics]
        key = (r.tags.get("benchmark", "untagged"), r.model)
        groups.setdefault(key, []).append(values)
    out = []
    for (bench, model), series in sorted(groups.items()):
        n = min(len(s) for s in series)
        columns = [[s[i] for s in series if math.isfinite(s[i])] for i in range(n)]
        depth = tuple(i / max(1, n - 1) for i in range(n))
        mean = tuple(sum(c) / len(c) if c else math.nan for c in columns)
        low = tuple(min(c) if c else math.nan for c in columns)
        high = tuple(max(c) if c else math.nan for c in columns)
        out.append(Profile(bench, model, len(series), depth, mean, low, high))
    return out


def model_size(name: str) -> float:
    """Parameters from a model's name ("smollm2-135m-instruct" -> 135e6, "qwen2.5-0.5b" ->
    0.5e9); infinity when the name has none (such a model sorts last)."""
    match = re.search(r"(?<![a-z0-9.])(\d+(?:\.\d+)?)([mb])(?![a-z])", name.lower())
    if match is None:
        return math.inf
    return float(match.group(1)) * (1e6 if match.group(2) == "m" else 1e9)


@dataclass(frozen=True)
class Persistence:
    case_id: str
    models: tuple[str, ...]  # weaker -> stronger
    explained: tuple[float, ...]  # f on each model
    base: str  # the case's own model
    # where the relevance moved: the case's segment sums (sum of R over each named span) on
    # each model, in the order of ``models``
    segments: tuple[dict[str, float], ...] = ()


def persistence(results: Sequence[CaseResult]) -> list[Persistence]:
    """Every case with comparisons: f on each model, ordered by size (weaker to stronger)."""
    out = []
    for r in sorted(results, key=lambda r: r.case_id):
        if not r.comparisons:
            continue
        pairs = [(r.model, float(r.attribution.explained))]
        pairs += [(c.model, float(c.explained)) for c in r.comparisons]
        sums = [segment_sums(r.attribution.relevance, r.segments) if r.segments else {}]
        sums += [{str(k): float(v) for k, v in c.segments.items()} for c in r.comparisons]
        order = sorted(range(len(pairs)), key=lambda i: (model_size(pairs[i][0]), i))
        out.append(
            Persistence(
                r.case_id,
                tuple(pairs[i][0] for i in order),
                tuple(pairs[i][1] for i in order),
                r.model,
                tuple(sums[i] for i in order),
            )
        )
    return out


def persistence_summary(rows: Sequence[Persistence]) -> dict[str, Any]:
    """Per compared model (every model that is not the case's own): how many of the case's
    failures persist there (f > 0) and the share; and over all pairs."""
    per: dict[str, dict[str, int]] = {}
    for row in rows:
        for model, f in zip(row.models, row.explained, strict=True):
            if model == row.base:
                continue
            entry = per.setdefault(model, {"pairs": 0, "persists": 0})
            entry["pairs"] += 1
            entry["persists"] += int(f > 0)
    pairs = sum(e["pairs"] for e in per.values())
    persists = sum(e["persists"] for e in per.values())
    return {
        "models": {
            m: {**e, "share": e["persists"] / e["pairs"] if e["pairs"] else 0.0}
            for m, e in sorted(per.items(), key=lambda kv: (model_size(kv[0]), kv[0]))
        },
        "pairs": pairs,
        "persists": persists,
        "share": persists / pairs if pairs else 0.0,
    }


@dataclass(frozen=True)
class StudyData:
    funnel: list[FunnelRow]
    patterns: dict[str, dict[str, int]]
    metric: str | None
    profiles: list[Profile]
    persistence: list[Persistence]

    @property
    def summary(self) -> dict[str, Any]:
        return persistence_summary(self.persistence)

    def to_json(self) -> dict[str, Any]:
        return {
            "funnel": [asdict(r) for r in self.funnel],
            "patterns": self.patterns,
            "metric": self.metric,
            "profiles": [asdict(p) for p in self.profiles],
            "persistence": [asdict(p) for p in self.persistence],
            "persistence_summary": self.summary,
        }


def study_data(results: Sequence[CaseResult], summaries: Sequence[dict[str, Any]]) -> StudyData:
    metric = profile_metric(results)
    return StudyData(
        funnel=funnel_rows(summaries),
        patterns=pattern_counts(results),
        metric=metric,
        profiles=metric_profiles(results, metric) if metric else [],
        persistence=persistence(results),
    )


# --- words --------------------------------------------------------------------------------------


def group_name(bench: str, model: str, models: int) -> str:
    """How a figure names a group: the benchmark, with the model when there are several (short:
    without the "-instruct" every shipped model has, so a column-wide figure keeps its type
    size)."""
    return bench if models <= 1 else f"{bench} ({model.removesuffix('-instruct')})"


def persistence_sentence(summary: dict[str, Any]) -> str:
    """ "The failure persists in 3 of 4 comparisons (75%)." (plain text)."""
    if not summary["pairs"]:
        return ""
    return (
        f"The failure persists (f > 0) in {summary['persists']} of {summary['pairs']} "
        f"comparisons ({100 * summary['share']:.0f}%)."
    )
