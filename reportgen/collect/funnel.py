"""The funnel of a collect run: how many items were generated, failed, searched, pinned and
why the others were not -- counted from the per-item outcomes, never from timings, so it does
not depend on how many workers ran them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any


def run_funnel(
    items: int, generated: int, failed: int, outcomes: list[dict[str, Any]], pinned: int
) -> dict[str, Any]:
    """The funnel of one model's run; ``outcomes``: one per failed item (a pin record, or a
    reason with its ``criterion``)."""
    searched = [o for o in outcomes if o.get("kind") == "pin"]
    return {
        "items": items,
        "generated": generated,
        "passed": generated - failed,
        "failed": failed,
        "not_clean_failure": dict(
            Counter(
                o["criterion"] for o in outcomes if o.get("criterion", "") not in ("", "time limit")
            )
        ),
        "not_searched": sum(1 for o in outcomes if o.get("criterion") == "time limit"),
        "searched": len(searched),
        "candidates": sum(int(o.get("candidates", 0)) for o in searched),
        "below_min_gap": sum(int(o.get("below_min_gap", 0)) for o in searched),
        "none_at_min_gap": sum(
            1
            for o in searched
            if o.get("candidates") and o.get("candidates") == o.get("below_min_gap")
        ),
        "continuations": sum(int(o.get("tried", 0)) for o in searched),
        "rejected": add_counts(o.get("rejected", {}) for o in searched),
        "dropped": add_counts(o.get("dropped", {}) for o in searched),
        "pinned": pinned,
    }


def pin_rate(pinned: int, failed: int) -> float | None:
    """Pinned failures per failure (None when nothing failed)."""
    return round(pinned / failed, 4) if failed else None


def summary_totals(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """summary.json's totals over its runs (one per model, or per part of a collection), in
    the file's key order: each item is counted by one run, so the totals are sums."""
    failed = sum(run["failed"] for run in runs)
    pinned = sum(run["pinned"] for run in runs)
    return {
        "items": sum(run["items"] for run in runs),
        "passed": sum(run["passed"] for run in runs),
        "failed": failed,
        "pinned": pinned,
        "pin_rate": pin_rate(pinned, failed),
        "funnel": add_funnels([run["funnel"] for run in runs]),
        "unpinned": [u | {"model": run["model"]} for run in runs for u in run["unpinned"]],
    }


def add_funnels(funnels: list[dict[str, Any]]) -> dict[str, Any]:
    """One funnel for several models' runs: counts added, per-criterion tables merged."""
    total: dict[str, Any] = {}
    for funnel in funnels:
        for key, value in funnel.items():
            if isinstance(value, dict):
                total[key] = add_counts([total.get(key, {}), value])
            else:
                total[key] = total.get(key, 0) + value
    return total


def add_counts(counts: Iterable[dict[str, int]]) -> dict[str, int]:
    total: Counter[str] = Counter()
    for c in counts:
        total.update(c)
    return dict(sorted(total.items()))
