"""Executors on this machine: in the driver's own process (``--jobs 1``) or N spawned worker
processes (``--jobs N``), each with its own model replica.

The driver hands out one job at a time to each idle worker, preferring a job whose model that
worker already holds, so a model loads once per worker. On the CPU the cores are split between
the workers (``torch.set_num_threads(cores // N)`` in each); with several GPUs each worker gets
its own. A worker that dies (killed, out of memory) has its case retried once on a fresh
worker; a second death reports the case as failed.

``on_outcome`` may return follow-up work (`collect`: a generation batch's failures become
recovery searches); it is queued behind the pending work of its model group. A worker process
exits when the driver does, even when the driver is killed without cleaning up."""

from __future__ import annotations

import os
import queue
import signal
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

from .jobs import Outcome, Work
from .worker import CaseWorker, set_threads

OnOutcome = Callable[[Outcome], Iterable[Work] | None]
OnProgress = Callable[[Work, tuple[Any, ...]], None]
MAX_ATTEMPTS = 2  # the first run and one retry on another worker


def cpu_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        return os.cpu_count() or 1


def run_in_process(
    jobs: list[Work],
    on_outcome: OnOutcome,
    on_progress: OnProgress = lambda job, args: None,
    loader: Callable[..., Any] | None = None,
) -> None:
    """``--jobs 1``: the driver computes every case itself (no process start-up), one model
    group after another; a group's model is dropped once no work of it is left."""
    worker = CaseWorker(loader=loader)
    pending = deque(sorted(jobs, key=group_order(jobs)))
    while pending:
        job = pending.popleft()
        outcome = worker.run(job, lambda *args, job=job: on_progress(job, args))
        add_follow_ups(pending, on_outcome(outcome))
        if not any(j.group == job.group for j in pending):
            worker.release(*job.group)


def group_order(jobs: list[Work]) -> Callable[[Work], tuple[int, int]]:
    """Jobs sorted by model group (first appearance), then by their place in the build."""
    first: dict[Any, int] = {}
    for job in jobs:
        first.setdefault(job.group, len(first))
    return lambda job: (first[job.group], job.index)


def add_follow_ups(pending: deque[Work], more: Iterable[Work] | None) -> None:
    """Queue ``more`` (in its order) right behind the pending work of the same model group,
    so a worker holding that model finds it first and a group finishes before the next."""
    for job in more or ():
        at = max((i for i, j in enumerate(pending) if j.group == job.group), default=-1)
        pending.insert(at + 1, job)


def _exit_with_parent() -> None:
    """Ends this worker process when the driver's process ends, however it ended (SIGKILL
    included): no orphan keeps a model in memory."""
    import multiprocessing
    from multiprocessing.connection import wait

    parent = multiprocessing.parent_process()
    if parent is None or parent.sentinel is None:
        return

    def watch() -> None:
        wait([parent.sentinel])
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _worker_main(name: str, inbox: Any, events: Any, threads: int | None, gpu: int | None) -> None:
    """A worker process: jobs in from ``inbox`` (``None`` stops it), events out."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
    _exit_with_parent()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    set_threads(threads)
    try:
        import transformers

        transformers.utils.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
    except Exception:  # noqa: BLE001 - quieter logs only
        pass
    _forward_warnings(name, events)
    worker = CaseWorker(gpu=gpu, name=name)
    while True:
        job = inbox.get()
        if job is None:
            return
        outcome = worker.run(
            job, lambda *args, i=job.index: events.put(("progress", name, i, args))
        )
        events.put(("done", name, outcome))


def _forward_warnings(name: str, events: Any) -> None:
    """This worker's one-line warnings (errors.warn: a damaged cache entry, an unwritable
    cache) go to the driver, which prints them as ``warning:`` lines, each once."""
    import logging

    class Forward(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            events.put(("warning", name, record.getMessage()))

    logger = logging.getLogger("reportgen")
    logger.addHandler(Forward())
    logger.propagate = False


def _said_by_a_worker(message: str) -> None:
    """A warning a worker forwarded: said once, however many workers meet the same fault."""
    from ..cache_files import already_said
    from ..errors import warn

    if not already_said(message):
        warn(message)


def run_workers(
    jobs: list[Work],
    workers: int,
    on_outcome: OnOutcome,
    on_progress: OnProgress = lambda job, args: None,
    *,
    gpus: int = 0,
    poll_s: float = 0.5,
) -> None:
    """``--jobs N``: N spawned worker processes. ``gpus``: CUDA devices to spread them over."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    events = ctx.Queue()
    uses_cuda = any(r.device_type == "cuda" for job in jobs for r in job.runtimes.values())
    threads = None if uses_cuda else max(1, cpu_cores() // workers)
    pending = deque(sorted(jobs, key=group_order(jobs)))
    procs: dict[str, tuple[Any, Any]] = {}
    held: dict[str, set[Any]] = {}  # the model groups a worker has loaded
    busy: dict[str, Work] = {}
    started = 0

    def start() -> None:
        nonlocal started
        name = f"worker-{started}"
        gpu = (started % gpus) if gpus else None
        started += 1
        inbox = ctx.Queue()
        proc = ctx.Process(
            target=_worker_main, args=(name, inbox, events, threads, gpu), name=name, daemon=True
        )
        proc.start()
        procs[name], held[name] = (proc, inbox), set()

    def assign() -> None:
        for name in list(procs):
            if name in busy or not pending:
                continue
            job = next((j for j in pending if j.group in held[name]), None)
            if job is None:  # start a group no worker holds yet, else help with the next one
                taken = set().union(*(held[n] for n in procs if n != name))
                job = next((j for j in pending if j.group not in taken), pending[0])
            pending.remove(job)
            busy[name] = job
            held[name].add(job.group)
            procs[name][1].put(job)

    def died(name: str) -> None:
        proc, _ = procs.pop(name)
        held.pop(name)
        job = busy.pop(name, None)
        if job is None:
            return
        if job.attempt + 1 < MAX_ATTEMPTS:
            pending.appendleft(replace(job, attempt=job.attempt + 1))
        else:
            outcome = Outcome(
                job.index,
                job.case_path,
                error=f"the worker process died {MAX_ATTEMPTS} times running this case "
                f"(last exit code {proc.exitcode})",
                worker=name,
            )
            add_follow_ups(pending, on_outcome(outcome))

    finished = False
    try:
        for _ in range(min(workers, len(pending))):
            start()
        while pending or busy:
            for name in [n for n, (p, _) in procs.items() if not p.is_alive()]:
                died(name)
            while pending and len(procs) < min(workers, len(pending) + len(busy)):
                start()
            assign()
            try:
                message = events.get(timeout=poll_s)
            except queue.Empty:
                continue
            if message[0] == "warning":
                _said_by_a_worker(message[2])
            elif message[0] == "progress":
                _, name, index, args = message
                job = busy.get(name)
                if job is not None and job.index == index:
                    on_progress(job, args)
            else:
                _, name, outcome = message
                busy.pop(name, None)
                add_follow_ups(pending, on_outcome(outcome))
        finished = True
    finally:
        _stop(procs, wait=finished)


def _stop(procs: dict[str, tuple[Any, Any]], *, wait: bool) -> None:
    """After the last job: ask every worker to finish. After Ctrl-C or an error: end them now
    (their finished results are already in the cache; a rerun resumes from there)."""
    for proc, inbox in procs.values():
        if not wait:
            proc.terminate()
        elif proc.is_alive():
            try:
                inbox.put(None)
            except (OSError, ValueError):
                pass
    for proc, _ in procs.values():
        proc.join(timeout=10 if wait else 5)
        if proc.is_alive():
            proc.terminate()
            proc.join(timeout=5)
