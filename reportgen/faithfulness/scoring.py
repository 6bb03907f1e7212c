"""f of many masked copies of one input, each scored once and as cheaply as exactness allows:
the type the flip test is built on (``MaskedScorer``). The cost is counted in token-forwards
(suffix tokens pushed through the model), the unit the long-input budget also counts in."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

from ..attribution import cache_argument, forward_kwargs
from ..clean_forward import CleanForward
from ..kv_cache import prefix_cache
from ..objectives import Objective

CACHE_BYTES = 1_500_000_000  # key/value copies of one batch (10k tokens of SmolLM2: 3 rows)
#: a batch forwards every row from its earliest masked position: once its rows are longer
#: than ``BATCH_LONG_ROW`` tokens, a set joins only while the batch forwards at most this many
#: times the sets' own suffix tokens (a set masked at 219 of 2,000 tokens with two masked near
#: the end forwarded 5,343 tokens for 1,811 of their own). Shorter rows batch as they did
#: before: a forward of a few hundred tokens has more fixed cost to share (on a GPU above all)
#: and little padding to waste
BATCH_WASTE = 1.25
BATCH_LONG_ROW = 512


def _wide(logits: torch.Tensor) -> torch.Tensor:
    """At least float32 (half-precision logits are widened; float64 stays float64)."""
    return logits if logits.dtype == torch.float64 else logits.float()


class MaskedScorer:
    """f of masked sets, each scored once, as cheaply as exactness allows.

    On a causal decoder a masked set changes nothing before its first masked position m, so the
    key/value states of the unmasked input up to m are computed once (one forward of the whole
    input) and reused: a set costs a forward of its suffix [m, n) only, and only the last
    position goes through the LM head (``logits_to_keep=1``). Sets are sorted by m and batched
    so that a batch shares the prefix up to its smallest m and holds at most ``token_budget``
    suffix tokens (memory grows with batch x length), and pads no row far beyond its own
    suffix (``BATCH_WASTE``). Other modules get full forwards."""

    def __init__(
        self,
        module: Any,
        base: torch.Tensor,
        fill: torch.Tensor,
        objective: Objective,
        batch_size: int,
        token_budget: int,
        progress: Callable[[int, int], None] | None,
        clean: CleanForward | None = None,
    ) -> None:
        self.module, self.base, self.fill, self.objective = module, base, fill, objective
        self.batch_size, self.token_budget = max(1, batch_size), max(1, token_budget)
        self.progress = progress
        self.values: dict[frozenset[int], float] = {}
        self.forwarded_tokens = 0  # suffix tokens pushed through the model (the cost)
        self.done = 0
        self.total = 0
        self.cache_name = cache_argument(module)
        self.prefix: list[tuple[torch.Tensor, torch.Tensor]] | None = None
        self.kwargs = forward_kwargs(module)
        if clean is not None and clean.states is not None and self.cache_name is not None:
            # the case's clean forward is this input's forward: its f and keys/values are f0
            # and the prefix states (its n token-forwards still count: the test reads them)
            self.values[frozenset()] = float(objective.value(_wide(clean.logits[None]))[0])
            self.prefix = list(clean.states)
            self.forwarded_tokens += base.shape[0]

    def _prefix_states(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Keys and values of every layer for the unmasked input (the clean forward's)."""
        if self.prefix is None:
            raise ValueError("a causal decoder's masked sets need the input's clean forward")
        return self.prefix

    def _cache_rows_budget(self, n: int) -> int:
        """Token rows of key/value cache a batch may hold (about CACHE_BYTES in all)."""
        if self.cache_name is None or not self.prefix:
            return self.batch_size * n
        per_token = sum(k[0, :, :1].numel() + v[0, :, :1].numel() for k, v in self.prefix)
        per_token *= self.prefix[0][0].element_size()
        return max(n, CACHE_BYTES // max(per_token, 1))

    def _forward(self, chunk: list[frozenset[int]], start: int) -> list[float]:
        n = self.base.shape[0]
        batch = self.base[start:].unsqueeze(0).repeat(len(chunk), 1, 1)
        for row, positions in enumerate(chunk):
            if positions:
                batch[row, [p - start for p in sorted(positions)]] = self.fill
        self.forwarded_tokens += len(chunk) * (n - start)
        if self.cache_name is None or start == 0:
            logits = self.module(inputs_embeds=batch, **self.kwargs).logits[:, -1]
        else:
            cache = prefix_cache(self._prefix_states(), start, rows=len(chunk))
            logits = self.module(
                inputs_embeds=batch, **{self.cache_name: cache}, use_cache=True, logits_to_keep=1
            ).logits[:, -1]
        return [float(v) for v in self.objective.value(_wide(logits)).tolist()]

    def score(self, sets: Iterable[frozenset[int]]) -> dict[frozenset[int], float]:
        """f of every set in ``sets`` (computed once each); returns the whole table."""
        n = self.base.shape[0]
        missing = [s for s in dict.fromkeys(sets) if s not in self.values]
        with torch.no_grad():
            if self.cache_name is not None and missing:
                self._prefix_states()  # refused before any forward when there is no prefix
            self.total += len(missing)
            # longest shared prefix first: the cheapest sets batch together
            missing.sort(key=lambda s: -(min(s) if s else n))
            i = 0
            while i < len(missing):
                start = min(missing[i]) if missing[i] else n
                chunk = [missing[i]]
                useful = n - start  # the chunk's own costs (the budget's cost model)
                while i + len(chunk) < len(missing) and len(chunk) < self.batch_size:
                    nxt = missing[i + len(chunk)]
                    s = min(nxt) if nxt else n
                    forwarded = (len(chunk) + 1) * (n - min(start, s))
                    if forwarded > self.token_budget:
                        break
                    if n - min(start, s) > BATCH_LONG_ROW and forwarded > BATCH_WASTE * (
                        useful + n - s
                    ):
                        break  # a row padded to a much earlier start forwards tokens for nothing
                    if (len(chunk) + 1) * n > self._cache_rows_budget(n):
                        break  # every row holds its own copy of the prefix's keys and values
                    chunk.append(nxt)
                    start = min(start, s)
                    useful += n - s
                start = 0 if self.cache_name is None else min(start, n - 1)
                for positions, value in zip(chunk, self._forward(chunk, start), strict=True):
                    self.values[positions] = value
                i += len(chunk)
                self.done += len(chunk)
                if self.progress is not None:
                    self.progress(self.done, self.total)
        return self.values
