"""Run untrusted Python (a model's completion plus a benchmark's tests) in a separate process:
a wall-clock limit, an address-space limit (RLIMIT_AS), a process-count limit (RLIMIT_NPROC), a
file-size limit, a fresh temporary working directory, no inherited environment. When run as
root the child drops to the ``nobody`` user, since root ignores RLIMIT_NPROC and may write
anywhere. The child has no network (not even 127.0.0.1) and may write only inside its own
temporary folder (not in /tmp or other world-writable folders): see ``_confine``. Never
executes anything inside the reportgen process."""

from __future__ import annotations

import ctypes
import functools
import os
import platform
import resource
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


# --- confinement of the child: no network, no writes outside its folder ----------------------
#
# Three layers, each used where the kernel offers it (all are on current Linux):
# - as root, a network namespace of its own (only a loopback that is down: 127.0.0.1 too is
#   unreachable);
# - Landlock (unprivileged): writes only beneath the child's temporary folder (reads stay
#   allowed: the interpreter needs its library), and from ABI 4 no TCP connect or bind;
# - seccomp (unprivileged): socket() for anything but AF_UNIX fails with EACCES.

_CLONE_NEWNET = 0x40000000
_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2
_SYS_LANDLOCK = (444, 445, 446)  # create_ruleset, add_rule, restrict_self (every architecture)
#: (AUDIT_ARCH, number of socket()) by machine
_SOCKET_SYSCALL = {"x86_64": (0xC000003E, 41), "aarch64": (0xC00000B7, 198)}
_MACHINE = platform.machine()  # asked here: the child after fork only calls the C library


class _Filter(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_uint16),
        ("jt", ctypes.c_uint8),
        ("jf", ctypes.c_uint8),
        ("k", ctypes.c_uint32),
    ]


class _Program(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(_Filter))]


@functools.lru_cache(maxsize=1)
def _libc() -> Any:
    """The C library, opened in the parent (the child after fork only calls into it)."""
    return ctypes.CDLL(None, use_errno=True)


def _own_network(libc: Any) -> None:
    libc.unshare(_CLONE_NEWNET)  # fails without CAP_SYS_ADMIN: the other layers remain


def _landlock(libc: Any, folder: str) -> None:
    create, add_rule, restrict = _SYS_LANDLOCK
    abi = libc.syscall(create, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    if abi < 1:
        return
    # every right that changes the file system (not execute, read file, read dir)
    fs = sum(1 << bit for bit in (1, *range(4, 13)))
    if abi >= 2:
        fs |= 1 << 13  # refer
    if abi >= 3:
        fs |= 1 << 14  # truncate
    if abi >= 5:
        fs |= 1 << 15  # ioctl on devices
    net = 0b11 if abi >= 4 else 0  # bind and connect TCP
    attr = (ctypes.c_uint64 * 2)(fs, net)
    size = 16 if abi >= 4 else 8
    ruleset = libc.syscall(create, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    if ruleset < 0:
        return
    try:
        fd = os.open(folder, os.O_PATH | os.O_CLOEXEC)
        try:
            beneath = (ctypes.c_char * 12).from_buffer_copy(
                fs.to_bytes(8, "little") + fd.to_bytes(4, "little", signed=True)
            )
            libc.syscall(add_rule, ruleset, 1, ctypes.byref(beneath), ctypes.c_uint32(0))
        finally:
            os.close(fd)
        libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
        libc.syscall(restrict, ruleset, ctypes.c_uint32(0))
    finally:
        os.close(ruleset)


def _no_sockets(libc: Any) -> None:
    known = _SOCKET_SYSCALL.get(_MACHINE)
    if known is None:
        return
    arch, socket_nr = known
    ld, jeq, ret = 0x20, 0x15, 0x06
    allow, deny = 0x7FFF0000, 0x00050000 | 13  # SECCOMP_RET_ERRNO | EACCES
    program = [
        (ld, 0, 0, 4),  # the architecture
        (jeq, 0, 5, arch),
        (ld, 0, 0, 0),  # the system call
        (jeq, 0, 3, socket_nr),
        (ld, 0, 0, 16),  # its first argument: the address family
        (jeq, 1, 0, 1),  # AF_UNIX: allowed
        (ret, 0, 0, deny),
        (ret, 0, 0, allow),
    ]

    filters = (_Filter * len(program))(*[_Filter(*row) for row in program])
    libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    libc.prctl(
        _PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(_Program(len(program), filters)), 0, 0
    )


def landlock_abi() -> int:
    """The kernel's Landlock ABI version (0: none), asked in this process."""
    try:
        abi = _libc().syscall(_SYS_LANDLOCK[0], None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    except (OSError, AttributeError):
        return 0
    return max(0, int(abi))


def confinement() -> dict[str, bool]:
    """Which layers the child gets on this machine: ``writes`` (Landlock: only its folder)
    and ``network`` (seccomp on sockets, or Landlock ABI 4, or a namespace as root)."""
    abi = landlock_abi()
    return {"writes": abi >= 1, "network": _MACHINE in _SOCKET_SYSCALL or abi >= 4}


def _confine(folder: str, root: bool) -> None:
    """Best effort: a layer the kernel lacks is skipped, never an error of the run."""
    try:
        libc = _libc()
    except OSError:
        return
    if root:
        _own_network(libc)


def _confine_after_drop(folder: str) -> None:
    try:
        libc = _libc()
    except OSError:
        return
    for layer in (lambda: _landlock(libc, folder), lambda: _no_sockets(libc)):
        try:
            layer()
        except (OSError, ValueError, AttributeError):
            pass


def _limits(
    memory_mb: int, nproc: int, drop_to: int | None, nproc_base: int, folder: str | None = None
):
    def apply() -> None:
        mem = memory_mb * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        resource.setrlimit(resource.RLIMIT_FSIZE, (16 * 2**20, 16 * 2**20))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        total = nproc_base + nproc
        resource.setrlimit(resource.RLIMIT_NPROC, (total, total))
        if folder is not None:
            _confine(folder, root=drop_to is not None)
        if drop_to is not None:
            os.setgroups([])
            os.setgid(drop_to)
            os.setuid(drop_to)
        if folder is not None:
            _confine_after_drop(folder)

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
        try:
            _libc()
        except OSError:
            pass
        proc = subprocess.Popen(
            [interpreter(root), "-I", "-B", str(script)],
            cwd=tmp,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=_limits(memory_mb, nproc, drop_to, nproc_base, folder=tmp),
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
