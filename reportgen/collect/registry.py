"""The registry of benchmarks by name: the built-in adapters plus any a user registers.

It sits above the adapters (which import the Benchmark type from ``benchmarks``), so the type's
module never imports the adapters back."""

from __future__ import annotations

import re
from collections.abc import Callable

from ..errors import ReportgenError
from .benchmarks import Benchmark

BENCHMARKS: dict[str, Callable[[], Benchmark]] = {}


def register(name: str, factory: Callable[[], Benchmark]) -> None:
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", name):
        raise ValueError(f"benchmark name {name!r} must match [a-z0-9-]+")
    if name in BENCHMARKS:
        raise ValueError(f"benchmark {name!r} is already registered")
    BENCHMARKS[name] = factory


def get_benchmark(name: str) -> Benchmark:
    _register_builtins()
    if name not in BENCHMARKS:
        raise ReportgenError(f"unknown benchmark {name!r} (known: {', '.join(sorted(BENCHMARKS))})")
    return BENCHMARKS[name]()


def _register_builtins() -> None:
    if "humaneval" in BENCHMARKS:
        return
    from .arithmetic import Arithmetic
    from .humaneval import HumanEval
    from .instructions import Instructions
    from .jsonl import JsonlBenchmark

    register("humaneval", HumanEval)
    register("instructions", Instructions)
    register("arithmetic", Arithmetic)
    register("jsonl", JsonlBenchmark)
