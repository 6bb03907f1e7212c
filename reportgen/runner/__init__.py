"""Running cases: where (CPU, CUDA), in which number format, and on how many workers (local
processes or a Ray cluster). The driver keeps the cache and the order; workers only compute."""

from .driver import EXECUTORS, LOCAL, Execution, RunReport, execute, run_cases, session
from .jobs import Job, Outcome, Work
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
    "Work",
    "execute",
    "resolve_runtime",
    "run_cases",
    "session",
]
