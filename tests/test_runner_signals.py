"""A `build --jobs 2` driver that is stopped leaves no worker process behind: SIGTERM is
handled as Ctrl-C (the pool is ended on the way out, the rerun resumes from the cache), and
even a SIGKILL'ed driver's workers exit on their own."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import test_runner
from click.testing import CliRunner
from test_runner import write_cases

from reportgen.cli import main
from reportgen.runner.worker import THREADS_ENV

model_dir = test_runner.model_dir  # the module fixture, shared with the local-runner tests
PROC = Path("/proc")


def _has_ray() -> bool:
    import importlib.util

    return importlib.util.find_spec("ray") is not None


pytestmark = pytest.mark.skipif(not PROC.is_dir(), reason="reads the process table in /proc")


def _stat(pid: int) -> tuple[int, str, int] | None:
    """(parent pid, state, start time) of ``pid``; None once it is gone."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[1]), fields[0], int(fields[19])


def descendants(root: int) -> set[tuple[int, int]]:
    """(pid, start time) of every process below ``root`` (start time: a reused pid is not
    taken for a survivor)."""
    parents: dict[int, list[tuple[int, int]]] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) is not None:
            parents.setdefault(stat[0], []).append((int(entry.name), stat[2]))
    found, todo = set(), [root]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.add(child)
            todo.append(child[0])
    return found


def alive(procs: set[tuple[int, int]]) -> set[int]:
    out = set()
    for pid, started in procs:
        stat = _stat(pid)
        if stat is not None and stat[2] == started and stat[1] != "Z":
            out.add(pid)
    return out


def wait_for(check, timeout: float, step: float = 0.1):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if value := check():
            return value
        time.sleep(step)
    return check()


RAY = pytest.param(
    signal.SIGTERM,
    ["--executor", "ray"],
    id="term-ray",
    marks=[pytest.mark.slow, pytest.mark.skipif(not _has_ray(), reason="needs ray")],
)


@pytest.mark.parametrize(
    ("signum", "executor"),
    [
        pytest.param(signal.SIGTERM, [], id="term"),
        pytest.param(signal.SIGKILL, [], id="kill"),
        RAY,  # the actors, and the Ray the driver started (raylet, GCS, workers), all end
    ],
)
def test_a_stopped_driver_leaves_no_worker_behind(model_dir, tmp_path, signum, executor):
    cases = write_cases(tmp_path / "cases", model_dir)
    for name in ("a", "b", "c"):  # six cases: some are still running when the signal comes
        text = (cases / f"{name}.toml").read_text()
        (cases / f"{name}2.toml").write_text(text.replace(f"case-{name}", f"case-{name}2"))
    cache = tmp_path / "cache"
    env = os.environ | {"REPORTGEN_CACHE": str(cache), THREADS_ENV: "1", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "reportgen.cli", "build", str(cases), "--no-pdf"]
    command += ["--out", str(tmp_path / "site")]
    log = tmp_path / "driver.log"
    with open(log, "wb") as sink:  # a file, not a pipe: a survivor holding it cannot hang us
        driver = subprocess.Popen(
            [*command, "--jobs", "2", *executor], env=env, stdout=sink, stderr=sink
        )
    seen: set[tuple[int, int]] = set()

    def workers_busy():
        seen.update(descendants(driver.pid))
        results = list((cache / "results").glob("*.json")) if (cache / "results").is_dir() else []
        return driver.poll() is not None or (len(alive(seen)) >= 2 and results)

    try:
        wait_for(workers_busy, timeout=120)
        assert driver.poll() is None, "the build ended before the signal: " + log.read_text()
        stored = len(list((cache / "results").glob("*.json")))
        seen.update(descendants(driver.pid))
        driver.send_signal(signum)
        driver.wait(timeout=60)
    finally:
        if driver.poll() is None:
            driver.kill()
    output = log.read_text()
    # every worker (and the pool's helpers) is gone soon after the driver
    wait_for(lambda: not alive(seen), timeout=30)
    survivors = alive(seen)
    for pid in survivors:  # a failing run must not leave them behind either
        os.kill(pid, signal.SIGKILL)
    assert len(seen) >= 2 and not survivors, f"survivors: {survivors}"
    if signum == signal.SIGTERM:
        assert driver.returncode == 1 and "interrupted" in output, output
        assert "Traceback" not in output
        # the rerun (here, in process) resumes: what finished before the signal is cached
        rerun = CliRunner().invoke(main, [*command[3:], "--jobs", "1"], env=env)
        assert rerun.exit_code == 0, rerun.output
        built, cached = map(
            int, re.findall(r"\((\d+) computed, (\d+) from cache", rerun.output)[-1]
        )
        assert cached >= stored >= 1 and built + cached == 6
