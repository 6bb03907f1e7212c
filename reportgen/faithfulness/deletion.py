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

import random
from collections.abc import Callable, Sequence
from typing import Any

import torch

from ..attribution import cache_argument, input_gradient
from ..clean_forward import CleanForward, clean_forward
from ..objectives import Objective
from .budget import exact_cost, scan_flips, within_budget
from .masking import MASKS, fill_token, mask_description, mask_row, unwrap_model
from .scoring import MaskedScorer

ORDERINGS = ("attnlrp", "grad_x_input", "gradient", "random")


def _rank(scores: Sequence[float], maskable: Sequence[int]) -> list[int]:
    """Maskable positions by descending score; ties keep position order (stable)."""
    return sorted(maskable, key=lambda i: -float(scores[i]))


def _insertion_sets(
    order: Sequence[int], maskable: Sequence[int], budget: int
) -> list[frozenset[int]]:
    everything = frozenset(maskable)
    return [everything - frozenset(order[:k]) for k in range(budget + 1)]


def _grid(points: Sequence[int], k_max: int) -> list[int]:
    return sorted({0, k_max} | {int(k) for k in points if 0 <= int(k) <= k_max})


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
    exact_if_fits: bool = False,
    random_points: Sequence[int] | None = None,
    progress: Callable[[int, int], None] | None = None,
    clean: CleanForward | None = None,
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
    full forwards) caps the token-forwards spent, on the cost model of ``CostBudget``. Sets are
    then evaluated in the order of what the dossier needs most, each step up to a share of the
    budget: the grid of the three ranked orderings (40 %), their flip scans (to 70 %), the
    random orders seed by seed on ``random_points`` (default: ``points``) and last their flip
    scans. Nothing is estimated: a value is computed or absent. A flip-k whose scan was cut is
    None, with ``"flip_bounds"[name] = [smallest k it can be, first flipping k evaluated or
    None]``; the random baseline is the mean of the seeds evaluated in full
    (``"random_seeds_used"``), its flip-k None unless every used seed's scan finished; AOPC is
    the mean over the k evaluated for every ordering (``"aopc_points"``).

    ``exact_if_fits`` (with ``cost_budget``): when the exact test (every k of every ordering,
    each distinct set once) costs no more than the budget, it is evaluated exactly as with
    ``points=None``, and the result has no budget fields; only a test too costly for the budget
    is sampled. A sampled result records what the exact test would have cost (``"exact_cost"``).

    ``clean``: the input's plain forward, when the caller has it (the case's one read of the
    input): f0 and the prefix states are read from it; without it, it is computed here."""
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
    module, tokenizer = unwrap_model(model)
    weight = module.get_input_embeddings().weight
    ids = torch.tensor([list(token_ids)], device=weight.device)
    embeddings, gradient, _, value = input_gradient(module, ids, objective, lrp=False)
    base = embeddings[0]
    fill_id = fill_token(module, tokenizer, mask_token_id) if mask == "unk" else None
    fill = mask_row(module, fill_id)

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

    if clean is None and cache_argument(module) is not None:
        clean = clean_forward(module, token_ids)  # f0 and the prefix states of every set
    if clean is not None:
        clean.check(token_ids)
    scorer = MaskedScorer(
        module, base, fill, objective, batch_size, token_budget, progress, clean=clean
    )
    all_orders = [*orders.values(), *random_orders]
    whole_cost = None if cost_budget is None else exact_cost(n, all_orders, k_max)
    if exact_if_fits and cost_budget is not None and whole_cost is not None:
        if whole_cost <= cost_budget:  # the exact test fits: run it whole, as points=None
            points, cost_budget, random_points = None, None, None
    grid = list(range(k_max + 1)) if points is None else _grid(points, k_max)
    seeds_used, cut, budget_used = random_seeds, [None] * len(all_orders), None
    if cost_budget is None:
        sets = [frozenset(o[:k]) for o in all_orders for k in grid]
        if insertion:
            sets += [s for o in all_orders for s in _insertion_sets(o, maskable, k_max)]
        scores = scorer.score(sets)
        evaluated = [set(grid) for _ in all_orders]
        if points is not None:
            scan_flips(scorer, all_orders, evaluated, k_max)
    else:
        if points is None or insertion:
            raise ValueError("cost_budget needs points (a grid of k) and insertion=False")
        random_grid = _grid(random_points if random_points is not None else points, k_max)
        evaluated, cut, seeds_used, budget_used = within_budget(
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
        "mask": mask_description(mask, tokenizer, fill_id),
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
            exact_cost=whole_cost,
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
