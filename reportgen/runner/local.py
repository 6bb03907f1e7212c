"""Executors on this machine: in the driver's own process (``--jobs 1``) or N spawned worker
processes (``--jobs N``), each with its own model replica.

The driver hands out one job at a time to each idle worker, preferring a job whose model that
worker already holds, so a model loads once per worker. On the CPU the cores are split between
the workers (``torch.set_num_threads(cores // N)`` in each); with several GPUs each worker gets
its own. A worker that dies (killed, out of memory) has its case retried once on a fresh
worker; a second death reports the case as failed."""

from __future__ import annotations

import os
import queue
import signal
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from .jobs import Job, Outcome
from .worker import CaseWorker, set_threads

OnOutcome = Callable[[Outcome], None]
OnProgress = Callable[[Job, tuple[Any, ...]], None]
MAX_ATTEMPTS = 2  # the first run and one retry on another worker


def cpu_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        return os.cpu_count() or 1


def run_in_process(
    jobs: list[Job],
    on_outcome: OnOutcome,
    on_progress: OnProgress = lambda job, args: None,
    loader: Callable[..., Any] | None = None,
) -> None:
    """``--jobs 1``: the driver computes every case itself (no process start-up)."""
    worker = CaseWorker(loader=loader)
    for job in sorted(jobs, key=_group_order(jobs)):
        on_outcome(worker.run(job, lambda *args, job=job: on_progress(job, args)))


def _group_order(jobs: list[Job]) -> Callable[[Job], tuple[int, int]]:
    """Jobs sorted by model group (first appearance), then by their place in the build."""
    first: dict[Any, int] = {}
    for job in jobs:
        first.setdefault(job.group, len(first))
    return lambda job: (first[job.group], job.index)


def _worker_main(name: str, inbox: Any, events: Any, threads: int | None, gpu: int | None) -> None:
    """A worker process: jobs in from ``inbox`` (``None`` stops it), events out."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    set_threads(threads)
    try:
        import transformers

        transformers.utils.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
    except Exception:  # noqa: BLE001 - quieter logs only
        pass
    worker = CaseWorker(gpu=gpu, name=name)
    while True:
        job = inbox.get()
        if job is None:
            return
        outcome = worker.run(
            job, lambda *args, i=job.index: events.put(("progress", name, i, args))
        )
        events.put(("done", name, outcome))


def run_workers(
    jobs: list[Job],
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
    pending = deque(sorted(jobs, key=_group_order(jobs)))
    by_index = {job.index: job for job in jobs}
    procs: dict[str, tuple[Any, Any]] = {}
    held: dict[str, set[Any]] = {}  # the model groups a worker has loaded
    busy: dict[str, Job] = {}
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
            on_outcome(
                Outcome(
                    job.index,
                    job.case_path,
                    error=f"the worker process died {MAX_ATTEMPTS} times running this case "
                    f"(last exit code {proc.exitcode})",
                    worker=name,
                )
            )

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
            if message[0] == "progress":
                _, _, index, args = message
                on_progress(by_index[index], args)
            else:
                _, name, outcome = message
                busy.pop(name, None)
                on_outcome(outcome)
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
