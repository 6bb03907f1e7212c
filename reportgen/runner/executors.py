"""Where jobs run: the :class:`Executor` protocol and the registry of executors by name.

A new executor is one class here (its ``name``, a one-line ``help`` for ``--executor``, a
``session`` for the span of a run and ``run`` for a list of jobs) and one entry in
:data:`EXECUTORS`; the driver and the command line read the registry and name no executor.
The implementations import lazily, so naming the executors (``--help``) loads neither torch
nor Ray."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from types import MappingProxyType
from typing import Any, Protocol

from .jobs import Job, Outcome, Work

OnOutcome = Callable[[Outcome], Iterable[Work] | None]
OnProgress = Callable[[Work, tuple[Any, ...]], None]


class Executor(Protocol):
    name: str
    help: str
    #: whether it can reach a cluster by address (``--ray-address``)
    takes_address: bool
    #: whether its session installs SIGTERM handlers of its own (ours go back over them)
    takes_signals: bool

    def session(self, address: str | None) -> AbstractContextManager[bool | None]:
        """The span of a run's workers; yields whether ``auto`` means CUDA (None: ask torch
        in this process)."""
        ...

    def run(
        self,
        jobs: list[Work],
        workers: int,
        on_outcome: OnOutcome,
        progress: OnProgress,
        loader: Callable[..., Any] | None,
    ) -> None:
        """Run ``jobs`` and the follow-ups ``on_outcome`` returns on up to ``workers`` workers;
        ``loader`` replaces ``load_model`` where the jobs run in this process (tests)."""
        ...


class LocalExecutor:
    """This machine: in the driver's process (one worker, or one job that brings no
    follow-ups), else N worker processes, one per GPU when the jobs run on CUDA."""

    name = "local"
    help = "this machine"
    takes_address = False
    takes_signals = False

    @contextmanager
    def session(self, address: str | None) -> Iterator[bool | None]:
        yield None

    def run(
        self,
        jobs: list[Work],
        workers: int,
        on_outcome: OnOutcome,
        progress: OnProgress,
        loader: Callable[..., Any] | None,
    ) -> None:
        from . import local

        may_follow = brings_follow_ups(jobs)
        if workers == 1 or (len(jobs) == 1 and not may_follow):
            local.run_in_process(jobs, on_outcome, progress, loader=loader)
            return
        gpus = 0
        if any(r.device == "cuda" for job in jobs for r in job.runtimes.values()):
            import torch

            gpus = torch.cuda.device_count()
        # a fixed set of cases needs no more workers than it has (fewer: more threads each)
        count = workers if may_follow else min(workers, len(jobs))
        local.run_workers(jobs, count, on_outcome, progress, gpus=gpus)


class RayExecutor:
    """A Ray cluster: an existing one by address, or a local Ray started for the run."""

    name = "ray"
    help = "a Ray cluster (pip install 'reportgen[ray]')"
    takes_address = True
    takes_signals = True  # ray.init: a crash report, then exit 15

    @contextmanager
    def session(self, address: str | None) -> Iterator[bool | None]:
        from .ray_executor import ray_session

        with ray_session(address) as cluster_gpus:
            yield cluster_gpus

    def run(
        self,
        jobs: list[Work],
        workers: int,
        on_outcome: OnOutcome,
        progress: OnProgress,
        loader: Callable[..., Any] | None,
    ) -> None:
        from .ray_executor import run_ray

        run_ray(jobs, workers, on_outcome, progress)


def brings_follow_ups(jobs: list[Work]) -> bool:
    """Whether this work may bring follow-ups (`collect`'s generation batches: then one job is
    no reason to stay in process); a build's case jobs never do."""
    return not all(isinstance(job, Job) for job in jobs)


EXECUTORS: Mapping[str, Executor] = MappingProxyType(
    {executor.name: executor for executor in (LocalExecutor(), RayExecutor())}
)
