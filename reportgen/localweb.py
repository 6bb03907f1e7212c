"""What the two local web servers (`reportgen explore`, `reportgen serve`) accept.

Both bind to 127.0.0.1 and answer only requests addressed to themselves: the Host header must
be ``127.0.0.1:PORT`` or ``localhost:PORT``, so a DNS-rebinding page (evil.example resolved to
127.0.0.1) gets a 403 and never a response it could read. `serve` also never leaves its site
folder (symlinks are resolved first). `explore` adds its own checks for state-changing routes
(same origin, a per-run token, JSON only): see :mod:`reportgen.explore`."""

from __future__ import annotations

import http.server
import os
from http import HTTPStatus
from pathlib import Path
from typing import Any

LOCAL_NAMES = ("127.0.0.1", "localhost")


def local_hosts(port: int) -> frozenset[str]:
    """The Host header values that address a server bound to 127.0.0.1:``port``."""
    hosts = {f"{name}:{port}" for name in LOCAL_NAMES}
    if port == 80:  # browsers leave the default port out of Host
        hosts.update(LOCAL_NAMES)
    return frozenset(hosts)


def host_problem(host: str | None, port: int) -> str | None:
    """None when ``host`` addresses this server, else the one line a 403 says."""
    if host is not None and host.strip().lower() in local_hosts(port):
        return None
    shown = "none" if host is None else repr(host[:80])
    return (
        f"forbidden: this server answers only http://127.0.0.1:{port}/ and "
        f"http://localhost:{port}/ (Host header: {shown})"
    )


def public_path(path: str | os.PathLike[str]) -> str:
    """``path`` as a page may show it: relative to the working folder when inside it, with
    ``~`` for the home folder, else only its last two parts -- never a whole absolute path."""
    raw = os.fspath(path)
    if not os.path.isabs(raw):
        return raw
    real = Path(raw)
    for base, shown in ((Path.cwd(), "."), (Path.home(), "~")):
        try:
            rest = real.relative_to(base)
        except ValueError:
            continue
        return shown if not rest.parts else f"{shown}/{rest.as_posix()}"
    tail = real.parts[-2:] if len(real.parts) > 2 else real.parts[1:]
    return "\u2026/" + "/".join(tail)


def inside(path: str | os.PathLike[str], root: str) -> bool:
    """Whether ``path``, symlinks resolved, is ``root`` (already resolved) or below it."""
    real = os.path.realpath(path)
    return real == root or real.startswith(root.rstrip(os.sep) + os.sep)


class SiteHandler(http.server.SimpleHTTPRequestHandler):
    """Files of one site folder only. A request for another Host is a 403; a path that leaves
    the folder (``..``, a symlink pointing out, an index.html that is such a link) is a 404; a
    folder without index.html is a 404, never a listing. Set ``port`` and ``root`` (resolved)
    on a subclass or through :func:`site_server`."""

    port: int = 0
    root: str = ""

    def refuse(self, code: int, message: str) -> None:
        body = (message + "\n").encode("utf-8")
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Every error as one plain line (no HTML page)."""
        self.close_connection = True
        if code == 404:
            self.refuse(404, "not found")
            return
        try:
            phrase = HTTPStatus(code).phrase
        except ValueError:
            phrase = "error"
        self.refuse(code, " ".join(str(message or phrase).split())[:200])

    def send_head(self) -> Any:
        problem = host_problem(self.headers.get("Host"), self.port)
        if problem is not None:
            self.refuse(403, problem)
            return None
        path = self.translate_path(self.path)
        candidates = [path]
        if os.path.isdir(path):
            candidates += [os.path.join(path, name) for name in ("index.html", "index.htm")]
        if not all(inside(p, self.root) for p in candidates if os.path.lexists(p)):
            self.refuse(404, "not found")
            return None
        return super().send_head()

    def list_directory(self, path: Any) -> None:
        self.refuse(404, "not found")
        return None


def site_server(directory: Path, port: int) -> http.server.ThreadingHTTPServer:
    """A threading server for ``directory`` on 127.0.0.1:``port`` (raises OSError as bind does)."""
    root = os.path.realpath(directory)
    handler = type("BoundSiteHandler", (SiteHandler,), {"port": port, "root": root})

    def make(*args: Any, **kwargs: Any) -> SiteHandler:
        return handler(*args, directory=root, **kwargs)

    return http.server.ThreadingHTTPServer(("127.0.0.1", port), make)
