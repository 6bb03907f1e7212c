"""Strict recovery: find a position where replacing the model's own greedy token by one of its
top-k alternatives, and continuing greedily, makes the verifier pass.

Candidates (position, alternative) are tried cheapest-first: ordered by the logit gap between the
greedy token and the alternative (so the lowest-margin positions and the best alternatives come
first), restricted to the part of the output that decides the verdict. Continuations run in
batches that reuse the KV cache of the shared prefix (prompt + output up to the earliest
position of the batch) instead of re-encoding it; the search stops at ``budget`` continuations."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .generate import Generation, SharedPrefix, greedy, prefix_cache


@dataclass(frozen=True)
class Candidate:
    position: int  # index into the output tokens
    alternative: int  # token id replacing output[position]
    rank: int  # 1 = the second-best token at that position
    gap: float  # logit(greedy) - logit(alternative)


@dataclass
class Found:
    candidate: Candidate
    output_ids: list[int]  # the recovering output: output[:position] + [alternative] + continuation
    stopped: str = ""  # how the continuation ended: "eos", "stop" or "length" (the token budget)


@dataclass
class SearchResult:
    tried: int = 0
    found: list[Found] = field(default_factory=list)
    exhausted: bool = False  # every candidate was tried (within the budget)


def candidates(
    gen: Generation,
    *,
    top_k: int,
    skip_ids: set[int],
    last_position: int | None = None,
    same_text: Callable[[int, int], bool] | None = None,
    priority: Callable[[int, int, int], int] | None = None,
    min_gap: float = 0.0,
) -> list[Candidate]:
    """Every (position, alternative) among the top-k at each step up to ``last_position``,
    ordered by ``priority(position, chosen, alternative)`` (lower first), then the logit gap;
    pairs whose gap is below ``min_gap`` are left out (the study's clean-case threshold: the
    model must prefer its token clearly, not be nearly indifferent)."""
    found: list[tuple[int, Candidate]] = []
    end = len(gen.ids) if last_position is None else min(len(gen.ids), last_position + 1)
    for position in range(end):
        ids, logits = gen.top_ids[position], gen.top_logits[position]
        chosen = gen.ids[position]
        best = logits[0]
        for rank in range(1, min(top_k + 1, len(ids))):
            alt = ids[rank]
            if alt == chosen or alt in skip_ids:
                continue
            if same_text is not None and same_text(alt, chosen):
                continue
            if best - logits[rank] < min_gap:
                continue
            rank_first = priority(position, chosen, alt) if priority is not None else 0
            found.append(
                (rank_first, Candidate(position, alt, rank, round(best - logits[rank], 5)))
            )
    found.sort(key=lambda fc: (fc[0], fc[1].gap, fc[1].position, fc[1].rank))
    return [c for _, c in found]


def search(
    model: Any,
    head: Sequence[int],
    gen: Generation,
    cands: Sequence[Candidate],
    *,
    passes: Callable[[Found], bool],
    eos: set[int],
    max_new_tokens: int,
    stop: Callable[[list[int]], bool] | None = None,
    budget: int = 32,
    batch_size: int = 8,
    reuse_prefix: bool = True,
    first_only: bool = True,
    accept: Callable[[Found], bool] | None = None,
    pad_id: int = 0,
) -> SearchResult:
    """Try ``cands`` in order, at most ``budget`` continuations, ``batch_size`` at a time.
    ``passes(found)`` is the verifier (``found.stopped`` says whether the continuation
    finished); ``accept(found)`` may still reject a pass (e.g. it does not survive re-checking),
    and the search then goes on."""
    result = SearchResult()
    shared: SharedPrefix | None = None
    if reuse_prefix and cands:
        shared = prefix_cache(model, list(head) + list(gen.ids))
    queue = list(cands[:budget])
    result.exhausted = len(cands) <= budget
    for start in range(0, len(queue), batch_size):
        batch = queue[start : start + batch_size]
        heads = [list(gen.ids[: c.position]) + [c.alternative] for c in batch]
        limits = [max_new_tokens - len(h) for h in heads]
        if shared is not None:
            base = min(c.position for c in batch)
            seqs = [h[base:] for h in heads]
            shared_length = len(head) + base
        else:
            seqs = [list(head) + h for h in heads]
            shared_length = 0

        def row_stop(row: int, new: list[int], heads: list[list[int]] = heads) -> bool:
            return stop is not None and stop(heads[row] + new)

        # a recovering token may itself end the output (stop rule) before any continuation
        ended = [stop is not None and stop(h) for h in heads]
        for row, done in enumerate(ended):
            if done:
                limits[row] = 0
        gens = greedy(
            model,
            seqs,
            eos=eos,
            max_new_tokens=limits,
            stop=row_stop,
            shared=shared,
            shared_length=shared_length,
            pad_id=pad_id,
        )
        result.tried += len(batch)
        for cand, h, g, done in zip(batch, heads, gens, ended, strict=True):
            found = Found(cand, h + g.ids, "stop" if done else g.stopped)
            if passes(found):
                if accept is None or accept(found):
                    result.found.append(found)
                    if first_only:
                        return result
    return result
