"""Progress lines with a time estimate, and the memory check that refuses a case up front."""

from __future__ import annotations

import pytest

from reportgen.errors import ReportgenError
from reportgen.progress import StepClock, case_steps, check_memory, memory_estimate_gb


def test_step_line_names_the_unit_and_estimates_the_rest():
    clock = StepClock(lambda text: None, label="case-a")
    assert clock.line("graph", 12, 30, 24.0) == "graph: layer 12 of 30, ~36 s left (case-a)"
    assert clock.line("faithfulness", 100, 400, 600.0) == (
        "faithfulness: masked set 100 of 400, ~30 min left (case-a)"
    )
    assert clock.line("attribution", 0, 1, 0.0) == "attribution (case-a)"
    assert clock.line("graph", 30, 30, 60.0) == "graph: layer 30 of 30 (case-a)"


def test_case_steps_forwards_plain_values():
    lines: list[str] = []
    report = case_steps(lines.append)
    report("a", "graph", 1, 3)
    report("b", "faithfulness", 2, 5)
    assert lines[0].startswith("graph: layer 1 of 3") and lines[0].endswith("(a)")
    assert lines[1].startswith("faithfulness: masked set 2 of 5") and lines[1].endswith("(b)")


def test_memory_estimate_follows_the_measured_points():
    assert memory_estimate_gb(2048) == pytest.approx(4.6)
    assert memory_estimate_gb(10_000) == pytest.approx(14.9)
    assert 4.6 < memory_estimate_gb(5_000) < 14.9
    assert memory_estimate_gb(22_000) > 24  # the 100,000-character prompt of the issue
    # a model twice as wide needs about twice the per-token memory
    wide = memory_estimate_gb(10_000, hidden=1152) - 1.0
    assert wide == pytest.approx(2 * (14.9 - 1.0))


def test_memory_estimate_holds_the_models_own_weights(monkeypatch):
    # SmolLM2's own weights: the measured curve unchanged
    assert memory_estimate_gb(2048, weights_gb=0.50) == pytest.approx(4.6)
    # Qwen2.5-Coder-1.5B in fp32: 6.62 GiB of weights (1.78B parameters), 28 x 1536 wide
    qwen = memory_estimate_gb(300, layers=28, hidden=1536, weights_gb=6.62)
    smol = memory_estimate_gb(300)
    per_token = (smol - 1.0) * (28 * 1536) / (30 * 576)
    assert qwen == pytest.approx(1.0 + 6.12 + per_token)
    assert 8.0 < qwen < 12.0  # the target for this case: a peak under 12 GB
    monkeypatch.delenv("REPORTGEN_MEMORY_CHECK", raising=False)
    with pytest.raises(ReportgenError, match="300 tokens need about 8"):
        check_memory(300, layers=28, hidden=1536, where="x", available=4.0, weights_gb=6.62)


def test_a_case_too_big_for_the_machine_fails_up_front(monkeypatch):
    monkeypatch.delenv("REPORTGEN_MEMORY_CHECK", raising=False)
    with pytest.raises(ReportgenError, match=r"cases/long\.toml: 10000 tokens need about 14\.9 GB"):
        check_memory(10_000, layers=30, hidden=576, where="cases/long.toml", available=8.0)
    assert check_memory(2_000, layers=30, hidden=576, where="x", available=8.0) < 8.0
    monkeypatch.setenv("REPORTGEN_MEMORY_CHECK", "0")
    assert check_memory(10_000, layers=30, hidden=576, where="x", available=8.0) > 8.0
