"""The adapter interface and the registry of benchmarks (an explicit dict that refuses overwrites).

An adapter is small: its items, a prompt builder, a stop rule, a verifier, and the data its
verifier needs (written to a case's ``[source]`` table so anyone can re-check it)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ReportgenError


@dataclass(frozen=True)
class Item:
    """One benchmark item: ``id`` as the benchmark names it (``"HumanEval/12"``), ``slug`` the
    case id it becomes, ``prompt`` the user's request, ``data`` what the verifier needs."""

    id: str
    slug: str
    prompt: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Verdict:
    """``passed``: the check holds; ``message`` says why in one line; ``criterion`` names the
    rule a rejected path broke ("not finished", "false equation", ...), counted in the funnel."""

    passed: bool
    message: str
    criterion: str = ""


class Benchmark:
    """Base class of the adapters. ``chat`` is whether the model gets the chat template."""

    name: str = ""
    max_new_tokens: int = 128
    search_version: int = 2  # bump when the candidate order changes: journaled searches are redone

    def items(self, data: Path | None = None) -> list[Item]:
        raise NotImplementedError

    def prompt(self, item: Item, chat: bool) -> str:
        """The text of the case's ``prompt`` field (the user turn when ``chat``)."""
        return item.prompt

    def stop(self, text: str, chat: bool) -> bool:
        """True once the output so far is complete (EOS always stops too)."""
        return False

    def answer_end(self, text: str, chat: bool) -> int | None:
        """Character offset after which the output no longer matters to the verdict (tokens
        from there on are not tried as recovering positions); None: all of it matters."""
        return None

    def priority(self, item: Item, output: str, offset: int, chosen: str, alternative: str) -> int:
        """Which (greedy token, alternative) pairs are tried first (lower first; ties by the
        logit gap): where a failure of this benchmark usually starts. ``offset`` is where the
        greedy token ``chosen`` starts in ``output``."""
        return 0

    def verify(self, item: Item, output: str, chat: bool) -> Verdict:
        """The benchmark's own check of an output's text."""
        raise NotImplementedError

    def check_recovery(
        self, item: Item, output: str, chat: bool, *, finished: bool, swap: int
    ) -> Verdict:
        """Whether the contrast path is a recovery for the benchmark's reason: it finishes
        within its token budget (end of sequence or the stop rule) and passes. ``swap`` is the
        character offset in ``output`` where the swapped-in token starts."""
        if not finished:
            return Verdict(False, "not finished within the token budget", "not finished")
        verdict = self.verify(item, output, chat)
        if not verdict.passed:
            return Verdict(False, verdict.message, "contrast path fails")
        return verdict

    def check_failure(self, item: Item, output: str, chat: bool, *, finished: bool) -> Verdict:
        """Whether the target path fails for the benchmark's reason (``passed``: it does): it
        finishes within its budget, so the failure is not merely an output cut short, and the
        benchmark's check rejects it."""
        if not finished:
            return Verdict(False, "not finished within the token budget", "target not finished")
        verdict = self.verify(item, output, chat)
        if verdict.passed:
            return Verdict(False, verdict.message, "target passes")
        return Verdict(True, verdict.message)

    def source(self, item: Item) -> dict[str, Any]:
        """The data a re-checker needs, for the case's ``[source]`` table."""
        return {}


#: the longest line of a user's JSONL file (one item): a longer prompt fits no model's context,
#: and tokenising megabytes would only delay the error
MAX_JSONL_LINE = 1 << 20


def jsonl_rows(path: Path) -> list[tuple[int, Any]]:
    """(line number, parsed value) of each non-blank line of a user's JSONL file; a line that
    is not JSON, or longer than :data:`MAX_JSONL_LINE` bytes, is an error naming the file and
    the line. Only a regular file is read (a FIFO or ``/dev/zero`` would never end)."""
    from ..files import NotRegularFile, open_regular

    rows = []
    try:
        with open_regular(path) as handle:
            for n, raw in enumerate(iter(lambda: handle.readline(MAX_JSONL_LINE + 1), b""), 1):
                if len(raw) > MAX_JSONL_LINE and not raw.endswith(b"\n"):
                    raise ReportgenError(
                        f"{path}:{n}: the line is longer than {MAX_JSONL_LINE // (1 << 20)} MB; "
                        "one item's prompt must fit a model's context"
                    )
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise ReportgenError(f"{path}:{n}: not UTF-8 text ({exc.reason})") from None
                if not line.strip():
                    continue
                try:
                    rows.append((n, json.loads(line)))
                except json.JSONDecodeError as exc:
                    raise ReportgenError(f"{path}:{n}: invalid JSON ({exc.msg})") from None
                except RecursionError:
                    raise ReportgenError(f"{path}:{n}: JSON nested too deeply") from None
    except NotRegularFile as exc:
        raise ReportgenError(f"{path}: {exc}") from None
    except OSError as exc:
        raise ReportgenError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    return rows


def slugify(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "item"
