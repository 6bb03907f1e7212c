"""Ctrl-C and SIGTERM honoured within seconds, even inside one long computation.

Python runs a signal handler only between bytecodes of the main thread. One attention call on a
long input is a single C call that can last minutes, and until it returns a Ctrl-C or a SIGTERM
waits (a 2 MB prompt on a tiny model ignored SIGTERM for 300 s). The C-level handler, though,
writes the signal's number to the *wakeup fd* at once; a watcher thread reads it there. When
the Python-level handler has not run within :data:`GRACE_S` seconds, the main thread is stuck in
such a call: the watcher prints the usual one line (``Error: interrupted``) and ends the process
with ``os._exit``. Nothing is lost that an ordinary kill would keep: the build lock is an
``flock`` (the kernel releases it), a half-written output is a temporary the next build
cleans, and the site is only ever swapped in whole.

A handler that has run (the ordinary case: the program was between two operations) keeps its
ordinary behaviour: ``KeyboardInterrupt`` unwinds the program, which cleans up on its way out,
for as long as that takes. Python drops an exception raised inside a weakref callback, a
``__del__`` or a garbage-collector callback (it prints "Exception ignored" and goes on), and a
pending signal's handler tends to run right there: it is the first Python code after a C call
frees a tensor. torch's activation checkpointing runs such callbacks all through a graph's
trace, so a Ctrl-C landing in one would be lost while the trace went on for minutes.
:func:`_on_unraisable` raises the dropped ``KeyboardInterrupt`` again in the code that
triggered the callback. Handlers other than reportgen's own and Ray's (a web server's) are
left alone."""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
from typing import Any

#: seconds the main thread has to start handling a signal before the process is ended
GRACE_S = 2.0
EXIT_CODE = 1  # what the ordinary "interrupted" path exits with

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_lock = threading.Lock()
_handled: dict[int, int] = {}  # signal -> how often a reportgen handler ran for it
_seen: dict[int, int] = {}  # signal -> how often the watcher read it from the wakeup fd
_last_handled: int | None = None  # the signal whose handler ran last
_installed: dict[str, Any] = {}
_interrupted = False


def note_handled(signum: int) -> None:
    """Called by every reportgen signal handler as it runs (the main thread got to it)."""
    global _last_handled
    with _lock:
        _handled[signum] = _handled.get(signum, 0) + 1
        _last_handled = signum


def _on_signal(signum: int, frame: Any) -> None:
    """SIGINT and SIGTERM as Ctrl-C: ``KeyboardInterrupt`` in the main thread. A further
    SIGTERM during the clean-up it starts is ignored (as the build driver does)."""
    global _interrupted
    note_handled(signum)
    if signum == signal.SIGTERM and _interrupted:
        return
    _interrupted = True
    raise KeyboardInterrupt


#: modules whose signal handlers end the run (so may be cut short when they cannot run):
#: reportgen's own, and Ray's (``ray.init`` installs one that exits, and its connection loop
#: is C++ that never returns to Python while no cluster answers)
_ENDING_HANDLERS = ("reportgen", "ray")


def _ours(handler: Any) -> bool:
    module = str(getattr(handler, "__module__", "") or "")
    return callable(handler) and module.split(".")[0] in _ENDING_HANDLERS


def _watch(reader: socket.socket, grace: float) -> None:
    while True:
        try:
            data = reader.recv(64)
        except OSError:
            return
        if not data:
            return
        for signum in data:
            if signum not in _SIGNALS:
                continue
            with _lock:
                _seen[signum] = _seen.get(signum, 0) + 1
                seen = _seen[signum]
            threading.Thread(target=_expire, args=(signum, seen, grace), daemon=True).start()


def _expire(signum: int, seen: int, grace: float) -> None:
    time.sleep(grace)
    with _lock:
        handled = _handled.get(signum, 0)
    stuck = handled < seen  # one of them never reached the program (or was dropped there)
    if stuck and _installed and _ours(signal.getsignal(signum)):
        try:
            os.write(2, b"\nError: interrupted\n")
        finally:
            os._exit(EXIT_CODE)


def _on_unraisable(unraisable: Any) -> None:
    """``sys.unraisablehook`` while installed. A ``KeyboardInterrupt`` that Python dropped in
    the main thread is a Ctrl-C (or SIGTERM) the program never saw: it is raised again at the
    next Python event of this thread (a line of the code that triggered the callback, or any
    call), through a one-shot trace function, as ``pdb.set_trace`` stops there. Until then it
    counts as not handled, so the watcher ends the process should the thread sit in C code
    past the grace. Everything else goes to the hook that was there before."""
    if not (
        isinstance(unraisable.exc_value, KeyboardInterrupt)
        and _installed
        and threading.current_thread() is threading.main_thread()
    ):
        _installed.get("unraisablehook", sys.__unraisablehook__)(unraisable)
        return
    with _lock:
        signum = _last_handled
        if signum is not None:
            _handled[signum] -= 1
    previous = sys.gettrace()
    try:
        caller = sys._getframe(1)  # the code whose release of an object ran the callback
    except ValueError:  # none: C code alone (the next call of Python code raises it)
        caller = None

    def raise_here(frame: Any, event: str, arg: Any) -> None:
        sys.settrace(previous)
        if caller is not None:
            caller.f_trace = None
        if signum is not None:
            note_handled(signum)
        raise KeyboardInterrupt

    if caller is not None:
        caller.f_trace = raise_here
        caller.f_trace_lines = True
    sys.settrace(raise_here)


def install(grace: float = GRACE_S) -> bool:
    """Route SIGINT/SIGTERM through :func:`_on_signal` and start the watcher; from the main
    thread only (elsewhere, and when already installed, nothing happens). ``uninstall``
    restores what was there."""
    global _interrupted
    if _installed or threading.current_thread() is not threading.main_thread():
        return False
    reader, writer = socket.socketpair()
    writer.setblocking(False)
    try:
        previous_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    except (ValueError, OSError):
        reader.close()
        writer.close()
        return False
    previous = {}
    for signum in _SIGNALS:
        current = signal.getsignal(signum)
        if current in (signal.SIG_DFL, signal.default_int_handler):
            previous[signum] = current
            signal.signal(signum, _on_signal)
    _interrupted = False
    _installed.update(
        reader=reader,
        writer=writer,
        fd=previous_fd,
        handlers=previous,
        unraisablehook=sys.unraisablehook,
    )
    sys.unraisablehook = _on_unraisable
    threading.Thread(target=_watch, args=(reader, grace), name="signal-watch", daemon=True).start()
    return True


def uninstall() -> None:
    if not _installed or threading.current_thread() is not threading.main_thread():
        return
    state = dict(_installed)
    _installed.clear()
    for signum, handler in state["handlers"].items():
        if signal.getsignal(signum) is _on_signal:
            signal.signal(signum, handler)
    if sys.unraisablehook is _on_unraisable:
        sys.unraisablehook = state["unraisablehook"]
    try:
        current = signal.set_wakeup_fd(state["fd"])
        if current != state["writer"].fileno():
            signal.set_wakeup_fd(current)  # replaced since (an event loop's): leave it theirs
    except (ValueError, OSError):
        pass
    state["writer"].close()
    state["reader"].close()
