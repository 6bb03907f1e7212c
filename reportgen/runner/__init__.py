"""Running cases: where (CPU, CUDA), in which number format, and on how many workers (local
processes or a Ray cluster). The driver keeps the cache and the order; workers only compute."""

from .driver import EXECUTORS, LOCAL, Execution, RunReport, run_cases
from .jobs import Job, Outcome
from .settings import DEFAULT_OPTIONS, ModelRuntime, RuntimeOptions, resolve_runtime

__all__ = [
    "DEFAULT_OPTIONS",
    "EXECUTORS",
    "LOCAL",
    "Execution",
    "Job",
    "ModelRuntime",
    "Outcome",
    "RunReport",
    "RuntimeOptions",
    "resolve_runtime",
    "run_cases",
]
