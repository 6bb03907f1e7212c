"""Progress inside a case, and what a case will cost before it starts.

``compute_case`` reports ``progress(step, done, total)`` with plain values (a step name and two
ints), so a worker process can forward it through a queue unchanged. :class:`StepClock` turns
those calls into a line with a time estimate for the step; :func:`memory_estimate_gb` and
:func:`check_memory` say up front when a case will not fit in this machine's memory;
:func:`return_freed_memory` keeps one step's freed memory from inflating the next one's peak."""

from __future__ import annotations

import ctypes
import gc
import os
import time
from collections.abc import Callable

Progress = Callable[[str, int, int], None]

STEP_UNITS = {
    "attribution": "pass",
    "graph": "layer",
    "faithfulness": "masked set",
    "comparison": "model",
    "figures": "figure",
}


def no_progress(step: str, done: int, total: int) -> None:
    """The default callback: report nothing."""


class StepClock:
    """Formats progress calls as "graph: layer 12 of 30, ~40 s left (case-id)".

    The estimate is the step's elapsed time per unit done, times the units left; it appears
    once a unit is done (before that nothing is known)."""

    def __init__(self, emit: Callable[[str], None], label: str = "") -> None:
        self.emit, self.label = emit, label
        self.step: str | None = None
        self.started = time.perf_counter()

    def __call__(self, step: str, done: int, total: int) -> None:
        now = time.perf_counter()
        if step != self.step:
            self.step, self.started = step, now
        self.emit(self.line(step, done, total, now - self.started))

    def line(self, step: str, done: int, total: int, elapsed: float) -> str:
        unit = STEP_UNITS.get(step, "part")
        text = f"{step}: {unit} {done} of {total}" if total > 1 else step
        if 0 < done < total:
            text += f", ~{format_seconds(elapsed / done * (total - done))} left"
        return f"{text} ({self.label})" if self.label else text


def case_steps(emit: Callable[[str], None]) -> Callable[[str, str, int, int], None]:
    """``(case_id, step, done, total)`` -> a line for ``emit``, one clock per case and step."""
    clock = StepClock(emit)

    def report(case_id: str, step: str, done: int, total: int) -> None:
        if clock.label != case_id:
            clock.label, clock.step = case_id, None
        clock(step, done, total)

    return report


def format_seconds(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


# Peak resident memory of a whole case on SmolLM2-135M (fp32, sdpa, 30 layers x 576), measured
# on the 2-core reference machine (ENVIRONMENT.md; the exact pruned 10k-token graph: 14.9 GB).
MEASURED_PEAK_GB = ((64, 1.0), (256, 1.3), (1024, 2.7), (2048, 4.6), (10_000, 14.9))
REFERENCE_WIDTH = 30 * 576  # layers x hidden of the measured model
# its fp32 weights (134.5M parameters), part of the measured base: another model's replace them
REFERENCE_WEIGHTS_GB = 0.50


def memory_estimate_gb(
    n_tokens: int, *, layers: int = 30, hidden: int = 576, weights_gb: float | None = None
) -> float:
    """Peak GB for a case of ``n_tokens``: the measured curve interpolated (beyond 10k tokens
    extrapolated with its last slope), the per-token part scaled by layers x hidden; with
    ``weights_gb`` (the loaded model's parameter bytes) the base holds those weights instead
    of SmolLM2's (Qwen2.5-Coder-1.5B in fp32 holds 6.6 GiB before its first token)."""
    points = MEASURED_PEAK_GB
    base = points[0][1]
    offset = 0.0 if weights_gb is None else weights_gb - REFERENCE_WEIGHTS_GB
    if n_tokens <= points[0][0]:
        per_token = 0.0
    else:
        pairs = list(zip(points, points[1:], strict=False))
        (n0, g0), (n1, g1) = next((pair for pair in pairs if n_tokens <= pair[1][0]), pairs[-1])
        per_token = g0 + (g1 - g0) * (n_tokens - n0) / (n1 - n0) - base
    return base + offset + per_token * (layers * hidden) / REFERENCE_WIDTH


def available_memory_gb() -> float | None:
    """MemAvailable from /proc/meminfo (None where there is none)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024**2
    except OSError:
        return None
    return None


def check_memory(
    n_tokens: int,
    *,
    layers: int,
    hidden: int,
    where: str,
    available: float | None = None,
    weights_gb: float | None = None,
) -> float:
    """The case's memory estimate in GB; raises :class:`~reportgen.errors.ReportgenError` when it
    exceeds the memory available now, before hours of work run out of memory. Set
    REPORTGEN_MEMORY_CHECK=0 to try anyway."""
    from .errors import ReportgenError

    estimate = memory_estimate_gb(n_tokens, layers=layers, hidden=hidden, weights_gb=weights_gb)
    if os.environ.get("REPORTGEN_MEMORY_CHECK", "1") == "0":
        return estimate
    free = available_memory_gb() if available is None else available
    if free is not None and estimate > free:
        raise ReportgenError(
            f"{where}: {n_tokens} tokens need about {estimate:.1f} GB of memory, this machine "
            f"has {free:.1f} GB available; shorten the input, free memory, or set "
            "REPORTGEN_MEMORY_CHECK=0 to try anyway"
        )
    return estimate


#: below this many input tokens a step's freed memory is too small to matter, and the full
#: garbage collection that returning it needs costs about 0.25 s a call (a quick-mode run pays
#: it twice): a short case skips it
RETURN_MEMORY_FROM_TOKENS = 1024


def return_freed_memory(n_tokens: int) -> None:
    """Hand the memory a finished step freed back to the system (glibc's ``malloc_trim``).

    Tensors below glibc's mmap threshold (which grows up to 32 MB as big blocks are freed) live
    on the heap, and glibc keeps the heap's free pages. Measured at 10,168 tokens of Gemma 3
    270M: after the graph 1.0 GB of tensors were alive in 6.9 GB resident, and the next step,
    unable to reuse those fragments, peaked at 20.5 GB where it needs 4.4 GB alone. Where there
    is no glibc (macOS) this does nothing. Inputs under :data:`RETURN_MEMORY_FROM_TOKENS`
    tokens skip it."""
    if n_tokens < RETURN_MEMORY_FROM_TOKENS:
        return
    gc.collect()
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError, TypeError):  # TypeError: Windows has no CDLL(None)
        return
    trim(0)
