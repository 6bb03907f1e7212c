"""Run untrusted Python (a model's completion plus a benchmark's tests) in a separate process:
a wall-clock limit, an address-space limit (RLIMIT_AS), a process-count limit (RLIMIT_NPROC), a
file-size limit, a fresh temporary working directory, no inherited environment. When run as
root the child drops to the ``nobody`` user, since root ignores RLIMIT_NPROC and may write
anywhere. Never executes anything inside the reportgen process."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

NOBODY = 65534


@dataclass(frozen=True)
class SandboxResult:
    passed: bool
    message: str  # "passed", "timed out after 10s", or the last line of the error
    returncode: int | None


def _user_processes(uid: int) -> int:
    count = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    count += 1
            except OSError:
                pass
    return count


def _world_executable(path: str) -> bool:
    """Whether any user may run ``path`` (every folder above it searchable by others)."""
    real = Path(os.path.realpath(path))
    try:
        if not real.is_file() or not real.stat().st_mode & 0o001:
            return False
        return all(parent.stat().st_mode & 0o001 for parent in real.parents)
    except OSError:
        return False


def interpreter(dropping: bool) -> str:
    """This Python, or (when the child runs as ``nobody`` and cannot reach it) a system one:
    the tests need only the standard library."""
    if not dropping:
        return sys.executable
    for candidate in (sys.executable, getattr(sys, "_base_executable", ""), "/usr/bin/python3"):
        if candidate and _world_executable(candidate):
            return candidate
    raise OSError("no Python interpreter the sandbox user may run (tried /usr/bin/python3)")


def _limits(memory_mb: int, nproc: int, drop_to: int | None, nproc_base: int):
    def apply() -> None:
        mem = memory_mb * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        resource.setrlimit(resource.RLIMIT_FSIZE, (16 * 2**20, 16 * 2**20))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        total = nproc_base + nproc
        resource.setrlimit(resource.RLIMIT_NPROC, (total, total))
        if drop_to is not None:
            os.setgroups([])
            os.setgid(drop_to)
            os.setuid(drop_to)

    return apply


def run_python(
    program: str,
    *,
    timeout: float = 10.0,
    memory_mb: int = 1024,
    nproc: int = 8,
    workdir: str | Path | None = None,
) -> SandboxResult:
    """Run ``program`` with a fresh ``python -I`` in a temporary directory; passed = exit 0."""
    root = os.getuid() == 0
    drop_to = NOBODY if root else None
    # RLIMIT_NPROC counts every process of the (real) user: allow ``nproc`` more than it has
    nproc_base = _user_processes(drop_to if root else os.getuid())
    with tempfile.TemporaryDirectory(prefix="reportgen-sandbox-", dir=workdir) as tmp:
        script = Path(tmp) / "program.py"
        script.write_text(program, encoding="utf-8")
        if root:
            os.chown(tmp, NOBODY, NOBODY)
            os.chown(script, NOBODY, NOBODY)
        env = {"PATH": "/usr/bin:/bin", "HOME": tmp, "TMPDIR": tmp, "PYTHONHASHSEED": "0"}
        proc = subprocess.Popen(
            [interpreter(root), "-I", "-B", str(script)],
            cwd=tmp,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=_limits(memory_mb, nproc, drop_to, nproc_base),
        )
        try:
            out, err = proc.communicate(timeout=timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            # the child leads its own process group: end it and anything it forked
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if timed_out:
            proc.communicate()
            return SandboxResult(False, f"timed out after {timeout:g}s", None)
        if proc.returncode == 0:
            return SandboxResult(True, "passed", 0)
        lines = [ln for ln in err.decode("utf-8", "replace").strip().splitlines() if ln.strip()]
        last = lines[-1].strip() if lines else f"exit status {proc.returncode}"
        if proc.returncode < 0:
            last = f"killed by signal {-proc.returncode}" + (f" ({last})" if lines else "")
        return SandboxResult(False, last[:300], proc.returncode)
