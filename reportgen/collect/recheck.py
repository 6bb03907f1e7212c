"""`reportgen collect --recheck`: the cases already collected, re-verified under the current
rules without a new search. It runs in this process (one pair per case, no batches to spread
over workers), on the device and in the number format that --device/--dtype/--4bit and the
project file choose, as a collection would."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import ReportgenError
from ..project import Project
from ..runner.settings import DEFAULT_OPTIONS, RuntimeOptions, resolve_runtime
from ..runner.worker import CaseWorker
from .generate import Generation
from .recover import Candidate, Found
from .registry import get_benchmark
from .settings import RECHECK_SETTINGS, Settings
from .work import Collector
from .writer import is_hand_edited, restated, write_case, write_summary


def recheck(
    benchmark: str,
    *,
    settings: Settings = RECHECK_SETTINGS,
    out: Path = Path("cases"),
    data: Path | None = None,
    log: Callable[[str], None] = lambda msg: None,
    options: RuntimeOptions = DEFAULT_OPTIONS,
    project: Project | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Re-verify the cases already collected in OUT/<benchmark>/ under the current rules,
    without a new search: each case's own pair goes through the same checks a new pin must pass
    (greedy target, logit gap >= ``min_gap`` on the case path, unbatched target path a clean
    failure, contrast path a strict recovery). A case that holds is rewritten with its verdicts;
    one that does not is deleted. summary.json then describes this re-check (the earlier run's
    counts are kept under ``previous_run``). ``options``/``project`` place each model as
    ``collect`` would (the flags, else the project file's ``[models.NAME]``, else defaults).

    A case file edited by hand (its content no longer matches the hash in its header, as the
    header says: edits are kept) would be rewritten or deleted: without ``force`` the re-check
    refuses before anything is loaded, naming the file, and changes nothing."""
    from ..cases import load_case

    bench = get_benchmark(benchmark)
    folder = out / bench.name
    paths = sorted(folder.glob("*.toml"))
    if not paths:
        raise ReportgenError(f"no collected cases in {folder}")
    edited = [path for path in paths if is_hand_edited(path)]
    if edited and not force:
        more = f" (and {len(edited) - 1} more)" if len(edited) > 1 else ""
        raise ReportgenError(
            f"{edited[0]}{more} was edited by hand; --recheck would rewrite or delete it and "
            "lose the edits: move it out of the folder, or pass --force to re-check it anyway"
        )
    by_id = {i.id: i for i in bench.items(data)}
    previous_path = folder / "summary.json"
    previous = (
        json.loads(previous_path.read_text(encoding="utf-8")) if previous_path.exists() else {}
    )
    started = time.monotonic()
    cases = [(path, load_case(path)) for path in paths]
    worker = CaseWorker(name="recheck")  # loads each model as a collect worker would
    runs: dict[str, Collector] = {}
    runtimes: dict[str, dict[str, str]] = {}
    kept: list[str] = []
    unpinned: list[dict[str, Any]] = []
    not_clean: Counter[str] = Counter()
    rejected: Counter[str] = Counter()
    below_gap = continued = 0
    for path, case in cases:
        if case.model not in runs:
            runtime = resolve_runtime(case.model, options, project, case_path=case.path)
            loaded = worker.load(case.model, runtime)
            runs[case.model] = Collector(loaded, case.model, bench, settings, folder)
            runtimes[case.model] = runtime.key()
            log(f"{case.model}: on {runtime.device}, {runtime.dtype}")
        run = runs[case.model]
        run.max_new = int(case.source.get("max_new_tokens", run.max_new))
        item = by_id.get(case.source.get("item"))
        if item is None:
            raise ReportgenError(
                f"{path}: [source] item {case.source.get('item')!r} is not in {bench.name}"
            )
        head = run.head(item)
        question = case.question
        prefix = list(question.prompt.prefix_ids or [])
        gen = Generation(prefix + [int(question.target)], "length")
        found = Found(
            Candidate(len(prefix), int(question.contrast), int(case.source.get("rank", 1)), 0.0),
            [],
        )
        ok, reason, result = run.confirm(item, head, gen, found)
        if ok:
            # the case keeps its id (a collect --id-suffix) and the models it compares with
            text = restated(result["case"], path, compare=case.compare, case_id=case.id)
            write_case(path, text, force=True)
            kept.append(case.id)
            continued += 2
            log(f"{case.id}: holds")
            continue
        path.unlink()
        unpinned.append({"item": item.id, "case": case.id, "reason": f"dropped: {reason}"})
        log(f"{case.id}: dropped ({reason})")
        criterion = result.get("criterion", "case path")
        if criterion == "gap":
            below_gap += 1
        else:
            continued += 2
            (not_clean if result.get("target") else rejected)[criterion] += 1
    n = len(cases)
    models = sorted(runs)
    funnel = {
        "items": n,
        "generated": n,
        "passed": 0,
        "failed": n,
        "not_clean_failure": dict(sorted(not_clean.items())),
        "not_searched": 0,
        "searched": n - sum(not_clean.values()),
        "candidates": n,
        "below_min_gap": below_gap,
        "none_at_min_gap": below_gap,
        "continuations": continued,
        "rejected": dict(sorted(rejected.items())),
        "dropped": {},
        "pinned": len(kept),
    }
    summary = {
        "benchmark": bench.name,
        "model": models[0] if len(models) == 1 else models,
        "items_available": len(by_id),
        "selection": f"re-check of the {n} cases shipped before, under the current rules",
        "items": n,
        "passed": 0,
        "failed": n,
        "pinned": len(kept),
        "pin_rate": round(len(kept) / n, 4),
        "funnel": funnel,
        "unpinned": unpinned,
        "wall_s": round(time.monotonic() - started, 1),
        "settings": {
            "min_gap": settings.min_gap,
            "max_new_tokens": settings.max_new_tokens or bench.max_new_tokens,
            "decoding": "greedy",
            "recheck": True,
        },
        "runs": [
            {
                "model": m,
                "runtime": runtimes[m],
                "cases": [c.id for _, c in cases if c.id in kept and c.model == m],
            }
            for m in models
        ],
        "previous_run": {
            k: previous.get(k)
            for k in ("selection", "items", "passed", "failed", "pinned", "settings")
            if k in previous
        },
    }
    write_summary(previous_path, summary)
    return summary
