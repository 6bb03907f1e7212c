"""`reportgen collect`: generate, verify, search each failure for a recovering token pair,
check the pair through the ordinary case path, write the cases and summary.json.

This module is the driver. The model work -- a model check, fixed generation batches, one
search per failure -- runs on the runner's workers (:mod:`.work`: in this process with
``--jobs 1``, else N local processes or Ray actors, each holding its model). The driver keeps
the journal, the verdicts' bookkeeping, the case files and the summary, and puts everything
back in item order, so what is written does not depend on the worker count or the executor."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ReportgenError
from ..project import Project
from ..runner import (
    DEFAULT_OPTIONS,
    LOCAL,
    Execution,
    ModelRuntime,
    Outcome,
    RuntimeOptions,
    Work,
    execute,
    resolve_runtime,
    session,
)
from .benchmarks import Benchmark, Item
from .funnel import pin_rate, run_funnel, summary_totals
from .generate import settings_key
from .journal import Journal, work_dir
from .parts import fill_gaps
from .recheck import recheck
from .registry import get_benchmark
from .settings import DEFAULT_SETTINGS, STRICT_VERSION, Settings, model_slug, search_batch
from .work import GenerateBatch, Prepare, Recover
from .writer import read_summary, restated, write_case, write_summary

__all__ = [
    "STRICT_VERSION",
    "Settings",
    "collect",
    "model_slug",
    "recheck",
    "select_items",
    "work_dir",
]


def select_items(items: list[Item], wanted: Sequence[str] | None, limit: int | None) -> list[Item]:
    if wanted:
        by_key = {i.id: i for i in items} | {i.slug: i for i in items}
        missing = [w for w in wanted if w not in by_key]
        if missing:
            raise ReportgenError(f"unknown item(s): {', '.join(missing)}")
        return [by_key[w] for w in wanted]
    return items[:limit] if limit is not None else items


@dataclass
class ModelRun:
    """The driver's bookkeeping of one model's run (its keys, journal, outcomes)."""

    spec: str
    runtime: ModelRuntime
    suffix: str
    items: list[Item]
    chat: bool = False
    search_key: str = ""
    journal: Journal | None = None
    outcomes: dict[str, dict[str, Any]] = field(default_factory=dict)  # failed item -> outcome
    gen_started: float = 0.0
    gen_seconds: float = 0.0
    batches_left: int = 0
    finished: float = 0.0
    resumed: dict[str, int] = field(default_factory=dict)  # what earlier runs' journal held


class _Driver:
    """Hands out the work of every model's run and takes the outcomes in."""

    def __init__(
        self,
        bench: Benchmark,
        runs: list[ModelRun],
        settings: Settings,
        folder: Path,
        deadline: float | None,
        code: str,
    ) -> None:
        from tqdm import tqdm

        self.bench, self.runs, self.settings = bench, runs, settings
        self.folder, self.deadline, self.code = folder, deadline, code
        self.tasks: dict[int, tuple[ModelRun, Work]] = {}
        self.generate_bar = tqdm(total=0, desc=f"{bench.name} generate", unit="item")
        self.recover_bar = tqdm(total=0, desc=f"{bench.name} recover", unit="failure")

    def close(self) -> None:
        self.generate_bar.close()
        self.recover_bar.close()

    def _task(self, run: ModelRun, kind: type, label: str, **fields: Any) -> Work:
        task = kind(
            index=len(self.tasks),
            case_path=f"{self.bench.name} on {run.spec}: {label}",
            model=run.spec,
            runtimes={run.spec: run.runtime},
            bench=self.bench,
            settings=self.settings,
            code=self.code,
            **fields,
        )
        self.tasks[task.index] = (run, task)
        return task

    def first(self) -> list[Work]:
        return [self._task(run, Prepare, "model check") for run in self.runs]

    def on_outcome(self, outcome: Outcome) -> list[Work]:
        run, task = self.tasks[outcome.index]
        if outcome.result is None:
            raise ReportgenError(f"{outcome.case_path}: {outcome.error or 'failed'}")
        if isinstance(task, Prepare):
            return self._prepared(run, bool(outcome.result["chat"]))
        if isinstance(task, GenerateBatch):
            return self._generated(run, task, outcome.result)
        self._recovered(run, task, outcome.result["outcome"])
        return []

    def _prepared(self, run: ModelRun, chat: bool) -> list[Work]:
        """The journal key needs the chat flag (the prompts depend on it): now the batches."""
        s, bench, items = self.settings, self.bench, run.items
        run.chat = chat
        gen = {
            "model": run.spec,
            "benchmark": bench.name,
            "chat": chat,
            "max_new_tokens": s.max_new_tokens or bench.max_new_tokens,
            "batch_size": s.batch_size,
            "items": [i.id for i in items],
            "prompts": [bench.prompt(i, chat) for i in items],
        }
        if run.runtime.key() != ModelRuntime("cpu").key():  # another dtype: other outputs
            gen["runtime"] = run.runtime.key()
        gen_key = settings_key(gen)
        run.search_key = settings_key(
            {
                "budget": s.budget,
                "top_k": s.top_k,
                "gen": gen_key,
                "search": bench.search_version,
                "min_gap": s.min_gap,
                "strict": STRICT_VERSION,
                "search_batch": search_batch(s),
            }
        )
        path = work_dir() / bench.name / f"{model_slug(run.spec)}-{gen_key}.jsonl"
        run.journal = journal = Journal(path, run.search_key)
        # a resumed run's times cover only what was left: say how much came from the journal
        run.resumed = {
            "generated": sum(1 for i in items if i.id in journal.gens),
            "searched": sum(1 for i in items if i.id in journal.pins),
        }
        work: list[Work] = []
        for start in range(0, len(items), s.batch_size):
            batch = tuple(items[start : start + s.batch_size])
            done = frozenset(i.id for i in batch if i.id in journal.gens)
            if len(done) < len(batch):
                label = f"generation batch {start // s.batch_size}"
                work.append(
                    self._task(
                        run, GenerateBatch, label, items=batch, done=done, deadline=self.deadline
                    )
                )
                self.generate_bar.total += len(batch) - len(done)
        self.generate_bar.refresh()
        run.batches_left = len(work)
        run.gen_started = time.monotonic()
        # failures journaled before: their searches need no generation
        work.extend(self._searches(run, [i for i in items if i.id in journal.gens]))
        return work

    def _generated(self, run: ModelRun, task: GenerateBatch, result: dict[str, Any]) -> list[Work]:
        assert run.journal is not None
        run.batches_left -= 1
        if run.batches_left == 0:
            run.gen_seconds = time.monotonic() - run.gen_started
        new = []
        for record in result.get("records", []):
            if record["item"] in run.journal.gens:
                continue
            run.journal.add(record)
            new.append(record["item"])
            self.generate_bar.update(1)
        return self._searches(run, [i for i in task.items if i.id in new])

    def _searches(self, run: ModelRun, generated: list[Item]) -> list[Work]:
        """A search for each failure among ``generated`` (a journaled pin is taken as it is)."""
        assert run.journal is not None
        work: list[Work] = []
        for item in generated:
            record = run.journal.gens[item.id]
            if record["passed"]:
                continue
            if item.id in run.journal.pins:
                run.outcomes[item.id] = run.journal.pins[item.id]
                continue
            work.append(
                self._task(
                    run,
                    Recover,
                    f"search of item {item.id}",
                    item=item,
                    record=record,
                    search_key=run.search_key,
                    out=str(self.folder),
                    suffix=run.suffix,
                    deadline=self.deadline,
                )
            )
        self.recover_bar.total += len(work)
        self.recover_bar.refresh()
        return work

    def _recovered(self, run: ModelRun, task: Recover, outcome: dict[str, Any]) -> None:
        assert run.journal is not None
        if outcome.get("kind") == "pin":
            run.journal.add(outcome)
        run.outcomes[task.item.id] = outcome
        run.finished = time.monotonic()
        self.recover_bar.update(1)


def _run_report(
    run: ModelRun,
    folder: Path,
    force: bool,
    started: float,
    compare: Sequence[str] = (),
    id_suffix: str = "",
) -> dict[str, Any]:
    """One model's entry of summary.json; its cases written, in item order (each comparing
    ``compare`` and its id ending in ``id_suffix``, where given)."""
    assert run.journal is not None
    gens, items = run.journal.gens, run.items
    generated = [i for i, item in enumerate(items) if item.id in gens]
    failed = [i for i in generated if not gens[items[i].id]["passed"]]
    pinned, unpinned, files = [], [], {}
    for index in failed:
        item = items[index]
        pin = run.outcomes[item.id]
        if pin.get("case"):
            case_id = pin["case_id"] + id_suffix
            path = folder / f"{case_id}.toml"
            text = pin["case"]
            if compare or id_suffix:
                text = restated(text, path, compare=compare, case_id=case_id if id_suffix else None)
            status = write_case(path, text, force)
            files[case_id] = status
            pinned.append(case_id)
        else:
            unpinned.append({"item": item.id, "reason": pin["reason"]})
    for item in items:
        if item.id not in gens:
            unpinned.append(
                {"item": item.id, "reason": "not generated: the time limit was reached"}
            )
    outcomes = [run.outcomes[items[i].id] for i in failed]
    funnel = run_funnel(len(items), len(generated), len(failed), outcomes, len(pinned))
    return {
        "model": run.spec,
        "runtime": run.runtime.key(),  # where the outputs were generated and verified
        "chat": run.chat,
        "items": len(items),
        "passed": funnel["passed"],
        "failed": len(failed),
        "pinned": len(pinned),
        "pin_rate": pin_rate(len(pinned), len(failed)),
        "funnel": funnel,
        "cases": pinned,
        "files": files,
        "unpinned": unpinned,
        "continuations": funnel["continuations"],
        "generated_tokens": sum(len(gens[items[i].id]["ids"]) for i in generated),
        "generation_s": round(run.gen_seconds, 1),
        "wall_s": round(max(run.finished, run.gen_started + run.gen_seconds) - started, 1),
        # the times above are this run's; items generated or searched by earlier runs
        # (journal) cost it nothing
        **({"resumed": run.resumed} if any(run.resumed.values()) else {}),
        "journal": str(run.journal.path),
    }


def collect(
    benchmark: str,
    models: Sequence[str],
    *,
    items: Sequence[str] | None = None,
    limit: int | None = None,
    settings: Settings = DEFAULT_SETTINGS,
    out: Path = Path("cases"),
    force: bool = False,
    data: Path | None = None,
    log: Callable[[str], None] = lambda msg: None,
    load: Callable[[str], Any] | None = None,
    options: RuntimeOptions = DEFAULT_OPTIONS,
    project: Project | None = None,
    execution: Execution = LOCAL,
    compare: Sequence[str] = (),
    id_suffix: str = "",
) -> dict[str, Any]:
    """Collect ``benchmark`` on each model; write OUT/<benchmark>/<case>.toml + summary.json.
    ``compare``: models every written case also runs on (the case's own model left out);
    ``id_suffix``: appended to every case id (and file name).

    ``options``/``project``: where and in which number format each model runs (the CLI's
    --device/--dtype/--4bit and the project file); ``execution``: on how many workers, local
    or Ray (the files written are the same for any). ``load`` replaces the model loader of
    the in-process executor (``--jobs 1``; tests)."""
    from ..cache_keys import code_version

    if not models:
        raise ReportgenError("no model given")
    if settings.search_batch_size is not None and settings.search_batch_size < 1:
        raise ReportgenError("--search-batch-size must be >= 1")
    if settings.budget < 1 or settings.top_k < 1 or settings.batch_size < 1:
        raise ReportgenError("--budget, --top-k and the batch size must be >= 1")
    if settings.min_gap < 0:
        raise ReportgenError("--min-gap must be >= 0")
    bench = get_benchmark(benchmark)
    all_items = bench.items(data)
    chosen = select_items(all_items, items, limit)
    if not chosen:
        raise ReportgenError("no items selected")
    folder = out / bench.name
    started = time.monotonic()
    deadline = time.time() + settings.time_limit if settings.time_limit is not None else None
    loader = (lambda spec, **runtime: load(spec)) if load is not None else None
    with session(execution) as has_cuda:
        runs = [
            ModelRun(
                spec,
                resolve_runtime(spec, options, project, has_cuda=has_cuda),
                "" if len(models) == 1 else "-" + model_slug(spec),
                chosen,
            )
            for spec in models
        ]
        driver = _Driver(bench, runs, settings, folder, deadline, code_version())
        try:
            execute(driver.first(), execution, driver.on_outcome, loader=loader)
        finally:
            driver.close()
    reports = [_run_report(run, folder, force, started, compare, id_suffix) for run in runs]
    first = reports[0]
    summary = {
        "benchmark": bench.name,
        "model": first["model"] if len(reports) == 1 else [r["model"] for r in reports],
        "items_available": len(all_items),
        "selection": (
            "items " + ",".join(items)
            if items
            else f"first {limit}"
            if limit is not None
            else "all"
        ),
        **summary_totals(reports),
        "wall_s": round(time.monotonic() - started, 1),
        "settings": {
            "budget": settings.budget,
            "top_k": settings.top_k,
            "batch_size": settings.batch_size,
            "search_batch_size": search_batch(settings),
            "max_new_tokens": settings.max_new_tokens or bench.max_new_tokens,
            "min_gap": settings.min_gap,
            "time_limit": settings.time_limit,
            "decoding": "greedy",
            **({"compare": list(compare)} if compare else {}),
            **({"id_suffix": id_suffix} if id_suffix else {}),
        },
        "runs": [{k: v for k, v in r.items() if k != "journal"} for r in reports],
    }
    previous_path = folder / "summary.json"
    if (items or limit is not None) and previous_path.is_file():
        merged = fill_gaps(read_summary(previous_path), summary, [i.id for i in chosen])
        if merged is not None:
            log(
                f"{previous_path}: {len(chosen)} items the earlier run had not reached are "
                f"counted in; it now describes {merged['items']} items"
            )
            summary = merged
        else:
            log(
                f"{previous_path}: replaced; it now describes only the {len(chosen)} items of this run"
            )
    write_summary(previous_path, summary)
    return summary
