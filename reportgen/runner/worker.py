"""One worker: keeps its loaded models between jobs and turns a ``Job`` into an ``Outcome``.

The same class runs in the driver (``--jobs 1``), in a local worker process and inside a Ray
actor, so every executor computes a case the same way."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable
from typing import Any

from ..errors import ReportgenError
from .jobs import Job, Outcome, Work
from .settings import ModelRuntime

THREADS_ENV = "REPORTGEN_THREADS"


def set_threads(threads: int | None) -> None:
    """torch threads of this process (``None``: leave them). ``REPORTGEN_THREADS`` fixes the
    count for every worker: float sums depend on how many threads split them (last-bit
    differences), so equal thread counts are what makes builds with different N byte-equal."""
    fixed = os.environ.get(THREADS_ENV, "").strip()
    if fixed.isdigit() and int(fixed) > 0:
        threads = int(fixed)
    if threads is not None:
        import torch

        torch.set_num_threads(max(1, threads))


class CaseWorker:
    """Computes cases; ``gpu`` pins a bare ``cuda`` runtime to ``cuda:gpu`` (one worker per GPU)."""

    def __init__(
        self,
        *,
        gpu: int | None = None,
        name: str = "driver",
        loader: Callable[..., Any] | None = None,
    ) -> None:
        self.gpu, self.name = gpu, name
        self.loader = loader
        self.models: dict[tuple[str, ModelRuntime], Any] = {}

    def _place(self, runtime: ModelRuntime) -> ModelRuntime:
        if self.gpu is not None and runtime.device == "cuda":
            return runtime.on_device(f"cuda:{self.gpu}")
        return runtime

    def load(self, spec: str, runtime: ModelRuntime) -> Any:
        runtime = self._place(runtime)
        if (spec, runtime) not in self.models:
            if self.loader is None:
                from ..models import load_model

                self.loader = load_model
            self.models[(spec, runtime)] = self.loader(
                spec, device=runtime.device, dtype=runtime.dtype, quantize=runtime.quantization
            )
        return self.models[(spec, runtime)]

    def release(self, spec: str, runtime: ModelRuntime) -> None:
        """Drop a model no job left needs (the in-process executor moves on to the next
        model: one model in memory at a time, as a run of one model after another)."""
        self.models.pop((spec, self._place(runtime)), None)

    def check_code(self, job: Work) -> None:
        """A result computed by other code would be cached under the driver's code version:
        refuse the job."""
        from ..cache_keys import code_version

        if job.code and job.code != code_version():
            raise ReportgenError(
                f"worker {self.name} runs reportgen code {code_version()}, the driver "
                f"{job.code}: install the same reportgen on every node"
            )

    def compute(self, job: Job, progress: Callable[..., None] | None = None) -> Any:
        """The CaseResult of ``job``; errors propagate."""
        from ..compute import compute_case

        self.check_code(job)
        case = job.case if job.case is not None else _parse(job)
        default = job.runtimes[job.model]

        def load_other(spec: str) -> Any:
            return self.load(spec, job.runtimes.get(spec, default))

        kwargs: dict[str, Any] = {
            "command": job.command,
            "load_other": load_other,
            "use_cache": job.use_cache,
        }
        if getattr(job, "fast", False):
            kwargs["fast"] = True
        if progress is not None:
            kwargs["progress"] = progress
        return compute_case(case, self.load(job.model, default), case_text=job.case_text, **kwargs)

    def run(self, job: Work, progress: Callable[..., None] | None = None) -> Outcome:
        """``job.perform`` (a case: its CaseResult), with every failure turned into the
        Outcome's one-line error: a worker must survive a bad case and go on with the next."""
        try:
            self.check_code(job)
            result = job.perform(self, progress)
        except Exception as exc:  # noqa: BLE001 - e.g. CUDA out of memory: the case fails alone
            error = failure_text(job.case_path, exc)
            return Outcome(job.index, job.case_path, error=error, worker=self.name)
        return Outcome(job.index, job.case_path, result=result, worker=self.name)


def _parse(job: Job) -> Any:
    """The Case of a job that came without one (built by hand, e.g. in a test)."""
    from ..cases import parse_case

    try:
        data = tomllib.loads(job.case_text)
    except tomllib.TOMLDecodeError as exc:
        raise ReportgenError(f"{job.case_path}: invalid TOML: {exc}") from None
    return parse_case(data, job.case_path)


def failure_text(path: str, exc: BaseException) -> str:
    """One line for the index and the terminal: the reason without repeating the file name; an
    unexpected exception is named as such."""
    text = _first_line(exc) if str(exc).strip() else ""
    if text.startswith(f"{path}: "):
        text = text[len(path) + 2 :]
    if isinstance(exc, ReportgenError):
        return text or type(exc).__name__
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror + (f" ({exc.filename})" if exc.filename else "")
    name = type(exc).__name__
    return f"unexpected {name}: {text}" if text else f"unexpected {name}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
