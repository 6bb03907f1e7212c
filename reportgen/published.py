"""What a published page may say about the machine that built it: nothing.

A result keeps the full local facts (where the model was loaded from, the command with its
paths) in the local result cache. Every published file (data.json, the dossier, the PDF, the
index, the case file beside the dossier) is rendered from :func:`published_result`, in which
every absolute local path is replaced: a local model by its folder's name and content hash,
a path in the recorded command by its path relative to the working folder (or its name), the
home folder by ``~``. The full paths go to a local log (:func:`log_local_facts`) that is not
part of the site."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shlex
import time
from pathlib import Path
from typing import Any

from .results import CaseResult

#: the local, unpublished log of what :func:`published_result` replaced
LOCAL_LOG = "published-paths.jsonl"


def _is_local_path(spec: str) -> bool:
    return spec.startswith(("/", "~")) or bool(re.match(r"[A-Za-z]:[\\/]", spec))


def _name(spec: str) -> str:
    return Path(spec.rstrip("/\\")).name or spec


def _home() -> str | None:
    try:
        home = str(Path.home())
    except (RuntimeError, KeyError):
        return None
    return home if home not in ("", "/") else None


def _command(command: str) -> str:
    """The recorded command with every absolute path argument made relative to the working
    folder when it lies below it, else reduced to its name."""
    try:
        args = shlex.split(command)
    except ValueError:
        return command
    cwd = Path.cwd()

    def one(arg: str) -> str:
        if not _is_local_path(arg):
            return arg
        path = Path(arg).expanduser()
        try:
            return path.relative_to(cwd).as_posix() or "."
        except ValueError:
            return _name(arg)

    out = []
    for arg in args:
        head, eq, value = arg.partition("=")
        out.append(f"{head}={one(value)}" if eq and head.startswith("-") else one(arg))
    return " ".join(shlex.quote(a) for a in out)


def _replace_all(value: Any, replace: Any) -> Any:
    if isinstance(value, str):
        return replace(value)
    if isinstance(value, list):
        return [_replace_all(v, replace) for v in value]
    if isinstance(value, dict):
        return {k: _replace_all(v, replace) for k, v in value.items()}
    return value


def published_result(result: CaseResult) -> CaseResult:
    """``result`` without any absolute local path (see the module's docstring). Idempotent;
    the numbers are untouched."""
    env = dict(result.environment)
    specs = [result.model, *(c.model for c in result.comparisons or ())]
    names = {spec: _name(spec) for spec in specs if _is_local_path(spec)}
    identity = str(env.get("model_identity", ""))
    content = identity.rsplit(":", 1)[-1] if ":" in identity else ""
    home = _home()

    def replace(text: str) -> str:
        for spec in sorted(names, key=len, reverse=True):
            text = text.replace(spec, names[spec])
        if home:
            text = re.sub(re.escape(home) + r"(?=/|\\|$)", "~", text)
        return text

    source = str(env.get("model_source", ""))
    if source and _is_local_path(source):
        digest = content or str(env.get("model_sha256", "")) or "unknown"
        env["model_source"] = f"{_name(source)} (local files, content sha256 {digest})"
    if identity and _is_local_path(identity):
        env["model_identity"] = f"{_name(identity.rsplit(':', 1)[0])}:{content}"
    if isinstance(env.get("command"), str):
        env["command"] = _command(env["command"])
    env = _replace_all(env, replace)
    att = result.attribution
    comparisons = None
    if result.comparisons is not None:
        comparisons = tuple(
            dataclasses.replace(c, model=replace(c.model)) for c in result.comparisons
        )
    return dataclasses.replace(
        result,
        model=replace(result.model),
        case_toml=replace(result.case_toml),
        attribution=dataclasses.replace(att, model=replace(att.model)),
        comparisons=comparisons,
        environment=env,
    )


def log_local_facts(results: list[CaseResult], out: Path) -> None:
    """Append the local facts a published page leaves out (model source and identity with
    their paths, the command) to the local log in the reportgen cache; never fatal."""
    from . import cache_files
    from .models import cache_dir

    path = cache_dir() / LOCAL_LOG
    if not cache_files.writable():  # already said once, in one warning line
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as log:
            for result in results:
                env = result.environment
                entry = {
                    "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
                    "out": os.path.abspath(out),
                    "case": result.case_id,
                    "model": result.model,
                    **{k: env.get(k) for k in ("model_source", "model_identity", "command")},
                }
                log.write(json.dumps(entry, ensure_ascii=False) + "\n")
    except OSError as exc:  # the cache's one warning, as for every other cache file
        cache_files.cannot_write(path, exc)
