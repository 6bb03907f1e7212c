"""Which requests the explorer answers: only its own page's (no other site, no DNS rebinding).

The app binds to 127.0.0.1 and answers only ``Host: 127.0.0.1:PORT`` / ``localhost:PORT``;
every ``/api/`` route and every non-GET request also needs the same origin (``Origin``,
``Sec-Fetch-Site``), the per-run token the served page holds (``X-Reportgen-Token``) and, for a
body, ``Content-Type: application/json`` (which no cross-site form or no-cors fetch can send
without a CORS preflight, which fails). Every answer carries :data:`SECURITY_HEADERS`."""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from .localweb import host_problem

TOKEN_HEADER = "X-Reportgen-Token"
#: on every answer: no framing by another site, no type sniffing, no referrer, no caching
SECURITY_HEADERS = {
    "X-Frame-Options": "SAMEORIGIN",
    "Content-Security-Policy": "frame-ancestors 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def request_problem(
    method: str, path: str, headers: Mapping[str, str], *, port: int, token: str
) -> str | None:
    """None when the explorer may answer this request, else the one line of its 403.

    Every request: the Host is this server. ``/api/`` routes and every method but GET/HEAD
    also: no foreign ``Origin`` (it must be the page's own), ``Sec-Fetch-Site`` (when sent)
    ``same-origin``, the run's token in ``X-Reportgen-Token``, and for anything with a body
    ``Content-Type: application/json``."""
    host = headers.get("host")
    problem = host_problem(host, port)
    if problem is not None or host is None:
        return problem
    if method in ("GET", "HEAD") and not path.startswith("/api/"):
        return None
    origin = headers.get("origin")
    if origin is not None and origin.strip().lower() != f"http://{host.strip().lower()}":
        return (
            f"forbidden: a request from another page ({origin[:80]!r}); only the explorer's "
            f"own page (http://{host}/) may use its API"
        )
    site = headers.get("sec-fetch-site")
    if site is not None and site.strip().lower() != "same-origin":
        return f"forbidden: a {site[:20]} request; only the explorer's own page may use its API"
    given = headers.get(TOKEN_HEADER.lower())
    if given is None or not hmac.compare_digest(given.encode(), token.encode()):
        return (
            f"forbidden: missing or wrong {TOKEN_HEADER} (the explorer's own page sends it; "
            "reload it after restarting the explorer)"
        )
    if method not in ("GET", "HEAD"):
        kind = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if kind != "application/json":
            return f"forbidden: the body must be sent as Content-Type: application/json, not {kind[:40]!r}"
    return None
