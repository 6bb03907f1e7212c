"""A benchmark collected in parts: a later run on the items an earlier run did not reach.

A time-limited run leaves items "not generated" or "not searched" in its summary.json. The
journal that lets a plain rerun resume lives in one machine's cache; on another machine (a
fresh one, a cluster node) the way to finish the benchmark is a run on just those items
(``--items``). Its summary would otherwise replace the earlier one and describe only the
few items, while the folder still holds the earlier run's cases. ``fill_gaps`` folds such a run
into the earlier summary instead: every item is counted by exactly one run, each run keeps
its own entry (with its selection), and the totals are the sums. Only gaps are filled: an item
the earlier run had searched is never counted twice, so a run that re-does finished items
replaces the summary as before."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .funnel import pin_rate, summary_totals

GAP_PREFIXES = ("not searched", "not generated")

# settings that change what a run finds; the time limit only changes how far it gets
_COMPARED = ("budget", "top_k", "batch_size", "search_batch_size", "max_new_tokens", "min_gap")


def _is_gap(entry: dict[str, Any]) -> bool:
    return entry["reason"].startswith(GAP_PREFIXES)


def _models(summary: dict[str, Any]) -> list[str]:
    model = summary["model"]
    return [model] if isinstance(model, str) else list(model)


def _without(run: dict[str, Any], gaps: list[dict[str, Any]]) -> dict[str, Any]:
    """``run`` as if it had not been given the items of ``gaps`` (all of them its own)."""
    not_searched = sum(1 for g in gaps if g["reason"].startswith("not searched"))
    funnel = dict(run["funnel"])
    funnel["items"] -= len(gaps)
    funnel["generated"] -= not_searched
    funnel["failed"] -= not_searched
    funnel["not_searched"] -= not_searched
    gone = {g["item"] for g in gaps}
    failed = run["failed"] - not_searched
    return run | {
        "items": run["items"] - len(gaps),
        "failed": failed,
        "pin_rate": pin_rate(run["pinned"], failed),
        "funnel": funnel,
        "unpinned": [u for u in run["unpinned"] if u["item"] not in gone],
    }


def fill_gaps(
    previous: dict[str, Any] | None, new: dict[str, Any], selected: Sequence[str]
) -> dict[str, Any] | None:
    """One summary for ``previous`` and ``new`` (a run on the ``selected`` item ids), or None
    when ``new`` is not a gap-filling part of ``previous``: another benchmark, other models or
    search settings, a re-check, or a selected item that ``previous`` had already finished."""
    if previous is None:
        return None
    same = (
        previous.get("benchmark") == new["benchmark"]
        and _models(previous) == _models(new)
        and not previous.get("settings", {}).get("recheck")
        and all(previous.get("settings", {}).get(k) == new["settings"][k] for k in _COMPARED)
    )
    if not same:
        return None
    runs = [dict(run) for run in previous["runs"]]
    for run in runs:
        run.setdefault("selection", previous["selection"])
        run.setdefault("time_limit", previous["settings"].get("time_limit"))
    wanted = set(selected)
    for model in _models(new):
        gaps_of_model = {
            u["item"]
            for run in runs
            if run["model"] == model
            for u in run["unpinned"]
            if _is_gap(u)
        }
        if not wanted <= gaps_of_model:
            return None
    for index, run in enumerate(runs):
        gaps = [u for u in run["unpinned"] if u["item"] in wanted and _is_gap(u)]
        if gaps:
            runs[index] = _without(run, gaps)
    part = {"selection": new["selection"], "time_limit": new["settings"]["time_limit"]}
    runs += [run | part for run in new["runs"]]
    return {
        "benchmark": new["benchmark"],
        "model": new["model"],
        "items_available": new["items_available"],
        "selection": f"{previous['selection']}; then {new['selection']}",
        **summary_totals(runs),
        "wall_s": round(previous["wall_s"] + new["wall_s"], 1),
        "settings": new["settings"],
        "runs": runs,
    }
