"""The settings of a `reportgen collect` run, shared by its driver and its workers."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    budget: int = 32
    top_k: int = 4
    batch_size: int = 8  # generation: part of the journal key (padding can move a greedy tie)
    #: continuations of one failure generated together (None: the budget, at most
    #: SEARCH_BATCH). On a CPU a decoding step streams every weight from memory whatever the
    #: batch, so a batch of 32 costs little more than one of 8; each row holds its own copy of
    #: the prompt's key/value cache, hence the cap. Batching can move a near-tie of the
    #: padded continuations, so it is part of the search's journal key; a continuation that
    #: passes is confirmed unbatched before it is pinned.
    search_batch_size: int | None = None
    max_new_tokens: int | None = None  # None: the benchmark's own
    explain_check: bool = True  # also run AttnLRP on each written case (the full case path)
    time_limit: float | None = None  # seconds; items not generated/searched by then are reported
    min_gap: float = 1.0  # logit(target) - logit(contrast) at least this (the study's threshold)


#: bump when what makes a pin acceptable changes: journaled searches are then redone
STRICT_VERSION = 1


def model_slug(spec: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", Path(spec).name.lower()).strip("-") or "model"


SEARCH_BATCH = 32


def search_batch(settings: Settings) -> int:
    return settings.search_batch_size or min(settings.budget, SEARCH_BATCH)


DEFAULT_SETTINGS = Settings()
#: a re-check confirms pairs through the case path without AttnLRP on each
RECHECK_SETTINGS = Settings(explain_check=False)
