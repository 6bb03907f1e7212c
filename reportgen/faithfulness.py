"""Faithfulness of an input attribution: does masking the tokens it ranks highest flip the
prediction? (docs/method.md section 8.)

An attribution is only worth explaining a failure with if the tokens it blames really move the
model. The test here measures that directly, against orderings that need no AttnLRP at all:

* ``attnlrp``: the given relevance, highest first (tokens that push towards the target first);
* ``grad_x_input``: plain gradient x input summed over the hidden dimension, highest first;
* ``gradient``: L2 norm of the plain gradient per token, highest first (unsigned);
* ``random``: ``random_seeds`` seeded permutations (``random.Random(seed).shuffle``), averaged.

Masking. A masked token keeps its position (``inputs_embeds`` is fed with the same length and
the model derives the same position ids); only its input embedding row is replaced:

* ``"zero"`` (default): by the zero vector. It removes the token's content without putting any
  other token in its place; the norms of the first layer see a zero row, which is a state the
  model never saw in training -- the usual price of a deletion test, and the same for every
  ordering, so the comparison between orderings stays fair.
* ``"unk"``: by the embedding of the tokenizer's unk token (else its pad token). Closer to the
  training distribution, but that token carries its own meaning.

Special tokens (chat markers, BOS) are never masked and never ranked: removing the template's
structure breaks the model for reasons unrelated to the question asked.

Definitions (K = min(budget, number of maskable tokens); all sequences are scored in batches
under ``torch.no_grad``; identical masked sets are scored once):

* deletion curve: f after masking the top-k tokens of an ordering, k = 0..K (curve[0] = f0);
* flip-k: the smallest k >= 1 with f_k <= 0, i.e. the model no longer prefers the target (for
  ``logit_diff``/``by_ref_token``: it now prefers the contrast); None when no k <= K flips, and
  None for every ordering when f0 <= 0 already (nothing to flip);
* random flip-k: the mean over seeds, a seed that never flips within K counted as K + 1 -- a
  lower bound on the true mean that does not drop the hard permutations (dropping them would
  flatter the random baseline); None only when no seed flips. The per-seed values are kept
  under ``random_flip_k_seeds``;
* AOPC: mean over k = 1..K of (f0 - f_k) -- larger means the ordering finds the tokens that
  carry f sooner; the random AOPC is that of the mean random curve (the mean is linear);
* insertion curve: start with every maskable token masked and unmask the top-k, k = 0..K.
"""

from __future__ import annotations

import inspect
import random
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch

from .attribution import forward_kwargs, input_gradient
from .objectives import Objective

ORDERINGS = ("attnlrp", "grad_x_input", "gradient", "random")
MASKS = ("zero", "unk")
TOP_POSITIVE = 5  # how many top positive tokens the OIT rule looks at


def _unwrap(model: Any) -> tuple[Any, Any]:
    """Accept a LoadedModel (module + tokenizer) or a bare module."""
    if hasattr(model, "model") and hasattr(model, "tokenizer"):
        return model.model, model.tokenizer
    return model, None


def _fill_token(module: Any, tokenizer: Any, mask_token_id: int | None) -> int:
    """The token whose embedding replaces masked rows for mask='unk': the one asked for, else
    the tokenizer's (or config's) unk token, else its pad token."""
    token_id = mask_token_id
    for source in (tokenizer, getattr(module, "config", None)):
        for name in ("unk_token_id", "pad_token_id"):
            if token_id is None and source is not None:
                token_id = getattr(source, name, None)
    if token_id is None:
        raise ValueError("mask='unk' needs an unk or pad token (pass mask_token_id)")
    return int(token_id)


def _mask_row(module: Any, token_id: int | None) -> torch.Tensor:
    embedding = module.get_input_embeddings()
    weight = embedding.weight
    if token_id is None:
        return torch.zeros(weight.shape[-1], dtype=weight.dtype, device=weight.device)
    ids = torch.tensor([token_id], device=weight.device)
    return embedding(ids)[0].detach()


def _mask_description(mask: str, tokenizer: Any, token_id: int | None) -> str:
    common = "positions unchanged, special tokens never masked"
    if mask == "zero":
        return f"input embedding replaced by zeros ({common})"
    name = None
    if tokenizer is not None and token_id is not None:
        name = tokenizer.convert_ids_to_tokens(int(token_id))
    label = f"{name!r}, id {token_id}" if name else f"id {token_id}"
    return f"input embedding replaced by the unk/pad token's embedding ({label}; {common})"


def _rank(scores: Sequence[float], maskable: Sequence[int]) -> list[int]:
    """Maskable positions by descending score; ties keep position order (stable)."""
    return sorted(maskable, key=lambda i: -float(scores[i]))


def _cache_argument(module: Any) -> str | None:
    """The forward's key/value-cache argument of a causal decoder, else None (encoders, toys):
    only a causal model's prefix states are independent of what comes after them."""
    config = getattr(module, "config", None)
    if config is None or getattr(config, "is_encoder_decoder", False):
        return None
    if not type(module).__name__.endswith(("ForCausalLM", "LMHeadModel")):
        return None
    params = inspect.signature(module.forward).parameters
    if "logits_to_keep" not in params:
        return None
    for name in ("cache", "past_key_values"):
        if name in params:
            return name
    return None


CACHE_BYTES = 1_500_000_000  # key/value copies of one batch (10k tokens of SmolLM2: 3 rows)


def _wide(logits: torch.Tensor) -> torch.Tensor:
    """At least float32 (half-precision logits are widened; float64 stays float64)."""
    return logits if logits.dtype == torch.float64 else logits.float()


class _Scorer:
    """f of masked sets, each scored once, as cheaply as exactness allows.

    On a causal decoder a masked set changes nothing before its first masked position m, so the
    key/value states of the unmasked input up to m are computed once (one forward of the whole
    input) and reused: a set costs a forward of its suffix [m, n) only, and only the last
    position goes through the LM head (``logits_to_keep=1``). Sets are sorted by m and batched
    so that a batch shares the prefix up to its smallest m and holds at most ``token_budget``
    suffix tokens (memory grows with batch x length). Other modules get full forwards."""

    def __init__(
        self,
        module: Any,
        base: torch.Tensor,
        fill: torch.Tensor,
        objective: Objective,
        batch_size: int,
        token_budget: int,
        progress: Callable[[int, int], None] | None,
    ) -> None:
        self.module, self.base, self.fill, self.objective = module, base, fill, objective
        self.batch_size, self.token_budget = max(1, batch_size), max(1, token_budget)
        self.progress = progress
        self.values: dict[frozenset[int], float] = {}
        self.forwarded_tokens = 0  # suffix tokens pushed through the model (the cost)
        self.done = 0
        self.total = 0
        self.cache_name = _cache_argument(module)
        self.prefix: list[tuple[torch.Tensor, torch.Tensor]] | None = None
        self.kwargs = forward_kwargs(module)

    def _prefix_states(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Keys and values of every layer for the unmasked input (and f of the empty set)."""
        if self.prefix is None:
            from transformers import DynamicCache

            cache = DynamicCache()
            out = self.module(
                inputs_embeds=self.base.unsqueeze(0),
                **{self.cache_name: cache},
                use_cache=True,
                logits_to_keep=1,
            )
            self.forwarded_tokens += self.base.shape[0]
            value = self.objective.value(_wide(out.logits[:, -1]))
            self.values.setdefault(frozenset(), float(value[0]))
            self.prefix = [(layer.keys, layer.values) for layer in cache.layers]
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
            from transformers import DynamicCache

            rows = len(chunk)
            cache = DynamicCache(
                ddp_cache_data=[
                    (
                        k[:, :, :start].expand(rows, -1, -1, -1),
                        v[:, :, :start].expand(rows, -1, -1, -1),
                    )
                    for k, v in self._prefix_states()
                ]
            )
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
                self._prefix_states()  # also scores the empty set
                missing = [s for s in missing if s not in self.values]
            self.total += len(missing)
            # longest shared prefix first: the cheapest sets batch together
            missing.sort(key=lambda s: -(min(s) if s else n))
            i = 0
            while i < len(missing):
                start = min(missing[i]) if missing[i] else n
                chunk = [missing[i]]
                while i + len(chunk) < len(missing) and len(chunk) < self.batch_size:
                    nxt = missing[i + len(chunk)]
                    s = min(nxt) if nxt else n
                    if (len(chunk) + 1) * (n - min(start, s)) > self.token_budget:
                        break
                    if (len(chunk) + 1) * n > self._cache_rows_budget(n):
                        break  # every row holds its own copy of the prefix's keys and values
                    chunk.append(nxt)
                    start = min(start, s)
                start = 0 if self.cache_name is None else min(start, n - 1)
                for positions, value in zip(chunk, self._forward(chunk, start), strict=True):
                    self.values[positions] = value
                i += len(chunk)
                self.done += len(chunk)
                if self.progress is not None:
                    self.progress(self.done, self.total)
        return self.values


def _insertion_sets(
    order: Sequence[int], maskable: Sequence[int], budget: int
) -> list[frozenset[int]]:
    everything = frozenset(maskable)
    return [everything - frozenset(order[:k]) for k in range(budget + 1)]


def _grid(points: Sequence[int], k_max: int) -> list[int]:
    return sorted({0, k_max} | {int(k) for k in points if 0 <= int(k) <= k_max})


class _Budget:
    """The token-forwards a long input's flip test may spend, counted on the prefix-reuse cost
    model (a masked set costs n - its first masked position), not on what the batches happened
    to forward: which sets are evaluated then depends on the input and the budget only, never
    on batch sizes. Sets are admitted in the caller's priority order up to a share of the
    budget; the first one that does not fit closes the request (a scan stays contiguous)."""

    def __init__(self, n: int, limit: int, values: dict[frozenset[int], float]) -> None:
        self.n, self.limit, self.values = n, limit, values
        self.spent = 0
        self.refused = 0  # sets asked for that did not fit

    def cost(self, masked: frozenset[int]) -> int:
        return self.n - min(masked) if masked else 0

    def fits(self, sets: Sequence[frozenset[int]], share: float = 1.0) -> bool:
        """Whether every set not yet known fits in what is left of ``share``."""
        new = {s for s in sets if s not in self.values}
        return self.spent + sum(self.cost(s) for s in new) <= self.limit * share

    def take(self, sets: Sequence[frozenset[int]], share: float = 1.0) -> list[frozenset[int]]:
        admitted: list[frozenset[int]] = []
        planned: set[frozenset[int]] = set()
        for masked in sets:
            if masked in self.values or masked in planned:
                admitted.append(masked)
                continue
            cost = self.cost(masked)
            if self.spent + cost > self.limit * share:
                self.refused += len(sets) - len(admitted)
                break
            self.spent += cost
            planned.add(masked)
            admitted.append(masked)
        return admitted


def _scan_flips(
    scorer: _Scorer,
    orders: Sequence[Sequence[int]],
    evaluated: list[set[int]],
    k_max: int,
    budget: _Budget | None = None,
    share: float = 1.0,
    step: int = 4,
) -> list[int | None]:
    """Evaluate k = 1, 2, ... of every order up to its first f_k <= 0 (the flip-k of the full
    curve), ``step`` k per order and round so the rounds batch well. An order whose f0 <= 0
    has no flip-k and is not scanned; the first flip on the grid bounds the scan. Without a
    ``budget`` every scan finishes. Returns, per order, None when its flip-k is exact (found,
    or no k up to the bound flips), else the smallest k the budget left unscanned: the flip-k
    is then at least that (and at most the first flipping grid point, if any)."""
    scores = scorer.values
    cut: list[int | None] = [None] * len(orders)
    if scores[frozenset()] <= 0:
        return cut
    limit = []
    for index, order in enumerate(orders):
        on_grid = [k for k in sorted(evaluated[index]) if k >= 1]
        flipped = [k for k in on_grid if scores[frozenset(order[:k])] <= 0]
        limit.append(flipped[0] if flipped else k_max)
    next_k = [1] * len(orders)
    open_orders = [i for i in range(len(orders)) if limit[i] >= 1]
    while open_orders:
        wanted = {
            i: list(range(next_k[i], min(next_k[i] + step, limit[i] + 1))) for i in open_orders
        }
        # round robin by k so that a cut leaves every open order a contiguous scan
        pairs = [(i, ks[j]) for j in range(step) for i, ks in wanted.items() if j < len(ks)]
        sets = [frozenset(orders[i][:k]) for i, k in pairs]
        admitted = sets if budget is None else budget.take(sets, share)
        pairs = pairs[: len(admitted)]
        scorer.score(admitted)
        got: dict[int, list[int]] = {i: [] for i in wanted}
        for i, k in pairs:
            got[i].append(k)
        still = []
        for i, ks in wanted.items():
            taken = got[i]
            evaluated[i].update(taken)
            if any(scores[frozenset(orders[i][:k])] <= 0 for k in taken):
                continue
            if len(taken) < len(ks):
                cut[i] = ks[len(taken)]
                continue
            if ks[-1] >= limit[i]:
                continue
            next_k[i] = ks[-1] + 1
            still.append(i)
        open_orders = still
    return cut


def _flip_k(curve: Sequence[float | None]) -> int | None:
    if not curve or curve[0] is None or curve[0] <= 0:
        return None
    return next((k for k in range(1, len(curve)) if curve[k] is not None and curve[k] <= 0), None)


def _aopc(curve: Sequence[float | None], ks: Sequence[int] | None = None) -> float | None:
    """Mean of f0 - f_k over k >= 1 (over the grid's k when the curve is sampled)."""
    ks = [k for k in (ks if ks is not None else range(len(curve))) if k >= 1 and k < len(curve)]
    values = [curve[k] for k in ks if curve[k] is not None]
    if not values or curve[0] is None:
        return None
    return float(sum(curve[0] - f for f in values) / len(values))


def _within_budget(
    scorer: _Scorer,
    ranked: list[list[int]],
    randoms: list[list[int]],
    grid: list[int],
    random_grid: list[int],
    k_max: int,
    cost_budget: int,
) -> tuple[list[set[int]], list[int | None], int, _Budget]:
    """The masked sets of a long input in the order the dossier needs them (see
    ``faithfulness``): returns the k evaluated per order, the scan cuts, the number of random
    seeds evaluated in full, and the budget's account."""
    n = scorer.base.shape[0]
    budget = _Budget(n, cost_budget, scorer.values)
    scorer.score([frozenset()])  # f0 (and the prefix states) come first and free
    evaluated: list[set[int]] = [{0} for _ in ranked]
    pairs = [(i, k) for k in grid if k >= 1 for i in range(len(ranked))]
    admitted = budget.take([frozenset(ranked[i][:k]) for i, k in pairs], share=0.4)
    scorer.score(admitted)
    for i, k in pairs[: len(admitted)]:
        evaluated[i].add(k)
    cut = _scan_flips(scorer, ranked, evaluated, k_max, budget, share=0.7)
    used = 0
    for order in randoms:
        sets = [frozenset(order[:k]) for k in random_grid if k >= 1]
        if not budget.fits(sets):
            budget.refused += len(sets)
            break  # a seed counts only when its whole grid is known
        scorer.score(budget.take(sets))
        used += 1
    random_evaluated = [set(random_grid) for _ in range(used)]
    cut += _scan_flips(scorer, randoms[:used], random_evaluated, k_max, budget, share=1.0)
    return evaluated + random_evaluated, cut, used, budget


def faithfulness(
    model: Any,
    token_ids: Sequence[int],
    objective: Objective,
    relevance: Sequence[float],
    special: Sequence[bool],
    *,
    budget: int = 50,
    random_seeds: int = 5,
    mask: str = "zero",
    mask_token_id: int | None = None,
    batch_size: int = 16,
    insertion: bool = True,
    points: Sequence[int] | None = None,
    token_budget: int = 8192,
    cost_budget: int | None = None,
    random_points: Sequence[int] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Flip test, deletion/insertion curves and AOPC of ``relevance`` against the gradient
    baselines and random orders (definitions in the module docstring).

    ``model`` is a LoadedModel or a bare module with ``get_input_embeddings()`` whose
    ``forward(inputs_embeds=...)`` returns ``.logits`` [batch, positions, vocab]. Returns plain
    data only (JSON-ready). ``insertion=False`` skips the insertion curves (half the cost;
    ``"insertion"`` is then empty).

    ``points=None`` evaluates the deletion curves at every k (the definitions above, exactly).
    For long inputs a grid of k (``points``; 0 and K are always added) keeps the cost bounded
    while flip-k stays exact: every order is also scanned k = 1, 2, ... up to its first flip
    (or K when it never flips), so the smallest flipping k is never skipped. Points not
    evaluated are None in the curves, and AOPC is then the mean over the grid's k >= 1 (the
    same k for every ordering, so they stay comparable); ``"points"`` records the grid.
    ``progress(done, total)`` is called after each batch of masked sets (``total`` grows as
    the flip scan asks for more).

    ``cost_budget`` (with ``points``; for inputs so long that even the grid costs minutes of
    full forwards) caps the token-forwards spent, on the cost model of ``_Budget``. Sets are
    then evaluated in the order of what the dossier needs most, each step up to a share of the
    budget: the grid of the three ranked orderings (40 %), their flip scans (to 70 %), the
    random orders seed by seed on ``random_points`` (default: ``points``) and last their flip
    scans. Nothing is estimated: a value is computed or absent. A flip-k whose scan was cut is
    None, with ``"flip_bounds"[name] = [smallest k it can be, first flipping k evaluated or
    None]``; the random baseline is the mean of the seeds evaluated in full
    (``"random_seeds_used"``), its flip-k None unless every used seed's scan finished; AOPC is
    the mean over the k evaluated for every ordering (``"aopc_points"``)."""
    if mask not in MASKS:
        raise ValueError(f"mask must be one of {MASKS}, got {mask!r}")
    n = len(token_ids)
    if len(relevance) != n or len(special) != n:
        raise ValueError(
            f"relevance ({len(relevance)}) and special ({len(special)}) must have one entry per "
            f"token ({n})"
        )
    if budget < 0 or random_seeds < 1:
        raise ValueError("budget must be >= 0 and random_seeds >= 1")
    module, tokenizer = _unwrap(model)
    weight = module.get_input_embeddings().weight
    ids = torch.tensor([list(token_ids)], device=weight.device)
    embeddings, gradient, _, value = input_gradient(module, ids, objective, lrp=False)
    base = embeddings[0]
    fill_id = _fill_token(module, tokenizer, mask_token_id) if mask == "unk" else None
    fill = _mask_row(module, fill_id)

    maskable = [i for i in range(n) if not special[i]]
    k_max = min(budget, len(maskable))
    grad_x_input = (embeddings * gradient).sum(-1)[0].float().tolist()
    grad_norm = gradient[0].float().norm(dim=-1).tolist()
    orders = {
        "attnlrp": _rank(relevance, maskable),
        "grad_x_input": _rank(grad_x_input, maskable),
        "gradient": _rank(grad_norm, maskable),
    }
    random_orders = []
    for seed in range(random_seeds):
        order = list(maskable)
        random.Random(seed).shuffle(order)
        random_orders.append(order)

    scorer = _Scorer(module, base, fill, objective, batch_size, token_budget, progress)
    all_orders = [*orders.values(), *random_orders]
    grid = list(range(k_max + 1)) if points is None else _grid(points, k_max)
    seeds_used, cut, budget_used = random_seeds, [None] * len(all_orders), None
    if cost_budget is None:
        sets = [frozenset(o[:k]) for o in all_orders for k in grid]
        if insertion:
            sets += [s for o in all_orders for s in _insertion_sets(o, maskable, k_max)]
        scores = scorer.score(sets)
        evaluated = [set(grid) for _ in all_orders]
        if points is not None:
            _scan_flips(scorer, all_orders, evaluated, k_max)
    else:
        if points is None or insertion:
            raise ValueError("cost_budget needs points (a grid of k) and insertion=False")
        random_grid = _grid(random_points if random_points is not None else points, k_max)
        evaluated, cut, seeds_used, budget_used = _within_budget(
            scorer, list(orders.values()), random_orders, grid, random_grid, k_max, cost_budget
        )
        scores = scorer.values

    def deletion(index: int) -> list[float | None]:
        order = all_orders[index]
        return [
            scores[frozenset(order[:k])] if k in evaluated[index] else None
            for k in range(k_max + 1)
        ]

    def inserting(order: Sequence[int]) -> list[float]:
        return [scores[s] for s in _insertion_sets(order, maskable, k_max)]

    names = list(orders)
    curves = {name: deletion(i) for i, name in enumerate(names)}
    seed_curves = [deletion(len(names) + i) for i in range(seeds_used)]
    curves["random"] = [
        None
        if not seed_curves or any(c[k] is None for c in seed_curves)
        else sum(c[k] for c in seed_curves) / seeds_used
        for k in range(k_max + 1)
    ]
    if not seed_curves:
        curves["random"][0] = scores[frozenset()]
    inserted: dict[str, list[float]] = {}
    if insertion:
        inserted = {name: inserting(order) for name, order in orders.items()}
        seed_inserted = [inserting(order) for order in random_orders]
        inserted["random"] = [
            sum(c[k] for c in seed_inserted) / random_seeds for k in range(k_max + 1)
        ]

    f0 = curves["attnlrp"][0]
    flip_k: dict[str, int | float | None] = {name: _flip_k(curves[name]) for name in orders}
    bounds: dict[str, list[int | None]] = {}
    for i, name in enumerate(names):
        if cut[i] is not None:
            bounds[name] = [cut[i], flip_k[name]]
            flip_k[name] = None
    seed_flips = [
        None if cut[len(names) + i] is not None else _flip_k(c) for i, c in enumerate(seed_curves)
    ]
    random_exact = all(cut[len(names) + i] is None for i in range(seeds_used))
    if seeds_used and not random_exact:
        flip_k["random"] = None
        bounds["random"] = [min(c for c in cut[len(names) :] if c is not None), None]
    elif any(k is not None for k in seed_flips):
        counted = [k if k is not None else k_max + 1 for k in seed_flips]
        flip_k["random"] = float(sum(counted) / len(counted))
    else:
        flip_k["random"] = None
    aopc_points = grid
    if cost_budget is not None:
        compared = [curves[name] for name in names] + ([curves["random"]] if seed_curves else [])
        aopc_points = [k for k in grid if k >= 1 and all(c[k] is not None for c in compared)]
    result: dict[str, Any] = {
        "flip_k": flip_k,
        "aopc": {
            name: _aopc(curve, aopc_points if aopc_points else sorted(evaluated[0]))
            if name != "random" or seed_curves
            else None
            for name, curve in curves.items()
        },
        "curves": curves,
        "insertion": inserted,
        "order": {
            **{name: order[:k_max] for name, order in orders.items()},
            "random": random_orders[0][:k_max],
        },
        "budget": k_max,
        "points": None if points is None else grid,
        "mask": _mask_description(mask, tokenizer, fill_id),
        "baseline_f": f0,
        "gradient_f": float(value),  # f from the gradient pass (same input, unbatched)
        "random_flip_k_seeds": seed_flips,
        "random_seeds": random_seeds,
        "n_tokens": n,
        "maskable": len(maskable),
        "masked_sets": len(scores),
        "forwarded_tokens": scorer.forwarded_tokens,
        "contrastive": objective.mode == "logit_diff" and objective.strategy == "by_ref_token",
    }
    if cost_budget is not None:
        result.update(
            cost_budget=cost_budget,
            cost_spent=budget_used.spent,
            sets_refused=budget_used.refused,
            flip_bounds=bounds,
            random_seeds_used=seeds_used,
            random_points=random_grid,
            aopc_points=aopc_points,
        )
    if f0 <= 0:
        result["note"] = (
            "f0 <= 0: the model does not prefer the target, so there is nothing to flip"
        )
    return result


def failure_pattern(
    relevance: Sequence[float],
    special: Sequence[bool],
    relevant_spans: Sequence[tuple[int, int]],
) -> dict[str, Any] | None:
    """A hint at why the model fails, when the case marks the spans that should drive the right
    answer (``relevant``, half-open token ranges [start, end)). ``relevance`` is towards the
    (wrong) target, so positive relevance pushes the model into the failure.

    Rule (special tokens ignored throughout; m non-special tokens, r of them inside the spans):

    * URT (under-weighted relevant tokens) when the relevant tokens hold less of the total |R|
      than a uniform share would give them: sum_inside |R| / sum_all |R| < r / m. The model
      barely uses the tokens that should decide the answer.
    * OIT (over-weighted irrelevant tokens) when the tokens outside the spans push the target
      harder than the relevant tokens matter at all: sum of positive R outside the spans >
      sum_inside |R|. Irrelevant context outweighs what should decide the answer.
    * "URT+OIT" when both hold, "none" when neither (the relevant tokens are read and weigh as
      much as the rest: a misreading rather than a weighting problem).

    Returns None when no span is given or no non-special token falls inside the spans."""
    n = len(relevance)
    if len(special) != n:
        raise ValueError("relevance and special must have the same length")
    inside = {
        i
        for start, end in relevant_spans
        for i in range(max(start, 0), min(end, n))
        if not special[i]
    }
    tokens = [i for i in range(n) if not special[i]]
    if not inside or not tokens:
        return None
    total_abs = sum(abs(float(relevance[i])) for i in tokens)
    relevant_abs = sum(abs(float(relevance[i])) for i in inside)
    relevant_sum = float(sum(float(relevance[i]) for i in inside))
    by_abs = sorted(tokens, key=lambda i: -abs(float(relevance[i])))
    rank = {i: r for r, i in enumerate(by_abs)}
    span = max(len(tokens) - 1, 1)
    mean_rank = sum(rank[i] for i in inside) / len(inside) / span
    positive = [i for i in sorted(tokens, key=lambda i: -float(relevance[i])) if relevance[i] > 0]
    top = positive[:TOP_POSITIVE]
    top_outside = sum(i not in inside for i in top)
    token_share = len(inside) / len(tokens)
    relevant_share = relevant_abs / total_abs if total_abs else 0.0
    outside = [i for i in tokens if i not in inside]
    outside_push = sum(max(float(relevance[i]), 0.0) for i in outside)
    urt = relevant_share < token_share
    oit = outside_push > relevant_abs
    top_mass = sum(float(relevance[i]) for i in top)
    outside_mass = sum(float(relevance[i]) for i in top if i not in inside)
    pattern = "URT+OIT" if urt and oit else "URT" if urt else "OIT" if oit else "none"
    return {
        "pattern": pattern,
        "relevant_share": relevant_share,
        "token_share": token_share,
        "relevant_sum": relevant_sum,
        "top_outside": top_outside,
        "top_outside_share": outside_mass / top_mass if top else 0.0,
        "mean_rank_fraction": mean_rank,
        "relevant_abs": relevant_abs,
        "outside_push": outside_push,
    }
