"""Running cases: where (CPU, CUDA), in which number format, and on how many workers (local
processes or a Ray cluster). The driver keeps the cache and the order; workers only compute.

The names below load on first use (PEP 562), so the command line can name the executors
(``runner.executors``) without importing the driver's computing modules (torch)."""

from __future__ import annotations

from importlib import import_module
from typing import Any

_WHERE = {
    "DEFAULT_OPTIONS": "settings",
    "EXECUTORS": "executors",
    "Executor": "executors",
    "LOCAL": "driver",
    "Execution": "driver",
    "Job": "jobs",
    "ModelRuntime": "settings",
    "Outcome": "jobs",
    "RunReport": "driver",
    "RuntimeOptions": "settings",
    "Work": "jobs",
    "execute": "driver",
    "resolve_runtime": "settings",
    "run_cases": "driver",
    "session": "driver",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_WHERE[name]}"), name)
