"""The driver of a run: cache look-ups, jobs out to an executor, results into the cache, and
the results back in the order of the cases -- so the site never depends on ``--jobs`` or on the
executor, only on the cases and their settings."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..cases import Case
from ..errors import ReportgenError
from ..project import Project
from .executors import EXECUTORS
from .jobs import Job, Outcome, Work
from .settings import DEFAULT_OPTIONS, ModelRuntime, RuntimeOptions, resolve_runtime
from .worker import failure_text


@dataclass(frozen=True)
class Execution:
    """How to run the cases: ``executor`` local or ray, ``jobs`` workers (local: processes;
    ray: actors at a time), ``ray_address`` an existing cluster (None: start a local Ray)."""

    executor: str = "local"
    jobs: int = 1
    ray_address: str | None = None

    def __post_init__(self) -> None:
        if self.executor not in EXECUTORS:
            names = ", ".join(EXECUTORS)
            raise ReportgenError(f"--executor: {self.executor!r} is not one of {names}")
        if self.jobs < 1:
            raise ReportgenError("--jobs must be >= 1")


LOCAL = Execution()


@dataclass
class RunReport:
    """What happened to each case; ids listed in case order."""

    results: list[Any] = field(default_factory=list)  # CaseResult, in case order
    built: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)


def run_cases(
    cases: list[Case],
    *,
    command: str,
    use_cache: bool = True,
    keep_going: bool = False,
    options: RuntimeOptions = DEFAULT_OPTIONS,
    project: Project | None = None,
    execution: Execution = LOCAL,
    on_done: Callable[[Case], None] = lambda case: None,
    on_progress: Callable[[Case, tuple[Any, ...]], None] = lambda case, args: None,
    loader: Callable[..., Any] | None = None,
    fast: bool = False,
) -> RunReport:
    """Results of ``cases`` (computed or from the cache). Without ``keep_going`` the first
    failure raises; with it, failed cases are reported and the others go on.
    ``loader`` replaces ``load_model`` in the in-process executor (tests). ``fast``: quick
    mode (no faithfulness test), cached under keys of its own."""
    from ..cache_keys import UNFETCHED, code_version, model_identity
    from ..compute import cached_result, result_key, store_result
    from ..results import CaseResult

    report = RunReport()
    code = code_version()
    with session(execution) as has_cuda:
        results: dict[int, CaseResult] = {}
        built: set[int] = set()
        cached: set[int] = set()
        failed: dict[int, tuple[str, str]] = {}
        jobs: list[Job] = []
        keys: dict[int, str] = {}
        # cases with an embedded model not fetched yet: their key is known only after the run
        # fetched it (else the next build misses the result it stored and computes it again)
        rekey: dict[int, tuple[str, dict[str, Any] | None]] = {}

        def fail(index: int, path: str, reason: str) -> None:
            if not keep_going:
                raise ReportgenError(f"{path}: {reason}")
            failed[index] = (path, reason)
            on_done(cases[index])

        for index, case in enumerate(cases):
            try:
                runtimes = {
                    spec: resolve_runtime(
                        spec, options, project, has_cuda=has_cuda, case_path=case.path
                    )
                    for spec in dict.fromkeys([case.model, *case.compare])
                }
                text = Path(case.path).read_text(encoding="utf-8")
                runtime = key_runtime(case, runtimes)
                keys[index] = result_key(case, text, runtime, fast=fast)
                if any(model_identity(spec).endswith(UNFETCHED) for spec in runtimes):
                    rekey[index] = (text, runtime)
            except (ReportgenError, OSError) as exc:
                fail(index, case.path, failure_text(case.path, exc))
                continue
            result = cached_result(keys[index]) if use_cache else None
            if result is not None:
                results[index] = result
                cached.add(index)
                on_done(case)
                continue
            jobs.append(
                Job(
                    index,
                    case.path,
                    text,
                    case.model,
                    runtimes,
                    command,
                    code,
                    use_cache,
                    fast,
                    case=case,
                )
            )

        def on_outcome(outcome: Outcome) -> None:
            index = outcome.index
            if index in results or index in failed:
                return  # a duplicate from a worker that died after reporting
            if outcome.result is None:
                fail(index, outcome.case_path, outcome.error or "failed")
                return
            result = CaseResult.from_json(outcome.result)
            if index in rekey:
                text, runtime = rekey[index]
                keys[index] = result_key(cases[index], text, runtime, fast=fast)
            store_result(keys[index], result)
            results[index] = result
            built.add(index)
            on_done(cases[index])

        def progress(job: Work, args: tuple[Any, ...]) -> None:
            on_progress(cases[job.index], args)

        if jobs:
            execute(list(jobs), execution, on_outcome, progress, loader)
    report.results = [results[i] for i in sorted(results)]
    report.built = [cases[i].id for i in sorted(built)]
    report.cached = [cases[i].id for i in sorted(cached)]
    report.failures = [failed[i] for i in sorted(failed)]
    return report


def key_runtime(case: Case, runtimes: dict[str, ModelRuntime]) -> dict[str, Any] | None:
    """The runtime part of the result key. The default (float32 on the CPU for every model)
    keeps the key of a plain CPU run."""
    keys = {spec: runtime.key() for spec, runtime in runtimes.items()}
    default = ModelRuntime("cpu").key()
    if all(k == default for k in keys.values()):
        return None
    return keys


@contextmanager
def session(execution: Execution) -> Iterator[bool | None]:
    """The span of a run's workers. Yields whether ``auto`` means CUDA: for Ray whether the
    cluster has GPUs, locally ``None`` (torch is asked here). A SIGTERM meanwhile is handled
    as Ctrl-C: the executors end their worker processes (and a Ray started for the run) on
    the way out instead of leaving them behind."""
    executor = EXECUTORS[execution.executor]
    with _sigterm_as_interrupt():
        with executor.session(execution.ray_address) as uses_cuda:
            # an executor's own SIGTERM handlers (ray.init's): ours again while the run lasts,
            # so the run ends as after Ctrl-C
            with _sigterm_as_interrupt(replace=executor.takes_signals):
                yield uses_cuda


def _interrupt(signum: int, frame: Any) -> None:
    from ..interrupts import note_handled

    note_handled(signum)  # the main thread got to it: no forced exit (reportgen.interrupts)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second one during the clean-up: ignored
    raise KeyboardInterrupt


@contextmanager
def _sigterm_as_interrupt(*, replace: bool = False) -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt in the main thread. Without ``replace``, left alone
    where the program installed a handler of its own; never off the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    if not replace and previous not in (signal.SIG_DFL, _interrupt):
        yield
        return
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def execute(
    jobs: list[Work],
    execution: Execution,
    on_outcome: Callable[[Outcome], Iterable[Work] | None],
    progress: Callable[[Work, tuple[Any, ...]], None] = lambda job, args: None,
    loader: Callable[..., Any] | None = None,
) -> None:
    """Run ``jobs`` (and the follow-ups ``on_outcome`` returns) on the executor of
    ``execution``, inside its ``session``. ``jobs=1`` locally: in this process, with
    ``loader`` replacing ``load_model`` (tests); else worker processes or Ray actors."""
    EXECUTORS[execution.executor].run(jobs, execution.jobs, on_outcome, progress, loader)
