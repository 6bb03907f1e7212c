"""The boundary between the driver and its workers: plain, picklable values only.

A ``Job`` carries everything a worker needs to compute one case, including the case file's
text (a worker on another machine of a Ray cluster need not see the driver's files); an
``Outcome`` carries the ``CaseResult`` back as JSON-able data, or the error that stopped it.

The executors run any ``Work``, not only cases: `reportgen collect` sends its generation
batches and recovery searches through the same workers (each keeps its loaded models)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from .settings import ModelRuntime

Progress = Callable[..., None]


class Worker(Protocol):
    """What a ``Work`` may ask of the worker running it (``worker.CaseWorker`` is the one
    implementation): its loaded models, kept between jobs, and the computation of a case."""

    def load(self, spec: str, runtime: ModelRuntime) -> Any: ...

    def compute(self, job: Job, progress: Progress | None = None) -> Any: ...


class Work(Protocol):
    """What an executor can run: a frozen dataclass with these fields and ``perform``.
    ``index`` identifies it to the driver; ``case_path`` names it in messages; ``attempt`` is
    raised (with ``dataclasses.replace``) when a worker running it died."""

    index: int
    case_path: str
    model: str
    runtimes: dict[str, ModelRuntime]
    code: str
    attempt: int

    @property
    def group(self) -> tuple[str, ModelRuntime]: ...

    def perform(self, worker: Worker, progress: Progress | None) -> dict[str, Any]:
        """The JSON-able result; raises on failure (the worker turns that into the error)."""
        ...


@dataclass(frozen=True)
class Job:
    index: int  # position of the case in the build (results are put back in this order)
    case_path: str
    case_text: str
    model: str
    runtimes: dict[str, ModelRuntime]  # the case's model and every comparison model
    command: str
    code: str = ""  # the driver's code_version(): a worker running other code refuses the job
    use_cache: bool = True  # False (--no-cache): the graph cache is bypassed too
    fast: bool = False  # quick mode (--fast): no faithfulness test
    attempt: int = 0  # 1 after the first worker running it died
    case: Any = None  # the driver's parsed Case (picklable): a worker need not parse the text again

    @property
    def group(self) -> tuple[str, ModelRuntime]:
        """Jobs of one group share a loaded model (a worker keeps it between jobs)."""
        return (self.model, self.runtimes[self.model])

    def perform(self, worker: Worker, progress: Progress | None) -> dict[str, Any]:
        return worker.compute(self, progress).to_json()


@dataclass(frozen=True)
class Outcome:
    index: int
    case_path: str
    result: dict[str, Any] | None = None  # CaseResult.to_json()
    error: str | None = None
    worker: str = ""  # which worker computed it (for messages, never for output)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.result is not None
