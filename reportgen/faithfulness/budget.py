"""The flip test's compute budget: what the exact test would cost, and, when that does not fit,
which masked sets are evaluated within the budget in the order the dossier needs them, with the
flip scans that keep flip-k exact (or bound it) when the curves are only sampled on a grid of k
(docs/method.md section 8.1)."""

from __future__ import annotations

from collections.abc import Sequence

from .scoring import MaskedScorer


def masked_set_cost(n: int, masked: frozenset[int]) -> int:
    """Token-forwards of one masked set of an ``n``-token input on the prefix-reuse scheme:
    nothing before the first masked position changes, so only the suffix is forwarded."""
    return n - min(masked) if masked else 0


def exact_cost(n: int, orders: Sequence[Sequence[int]], k_max: int) -> int:
    """Token-forwards of the exact test: every k = 1..``k_max`` of every ordering, each distinct
    masked set once (orderings that agree on their first tokens share those sets)."""
    sets = {frozenset(order[:k]) for order in orders for k in range(1, k_max + 1)}
    return sum(masked_set_cost(n, masked) for masked in sets)


class CostBudget:
    """The token-forwards a flip test too costly to run whole may spend, counted on the
    prefix-reuse cost model (a masked set costs n - its first masked position), not on what the
    batches happened to forward: which sets are evaluated then depends on the input and the
    budget only, never on batch sizes. Sets are admitted in the caller's priority order up to a share of the
    budget; the first one that does not fit closes the request (a scan stays contiguous)."""

    def __init__(self, n: int, limit: int, values: dict[frozenset[int], float]) -> None:
        self.n, self.limit, self.values = n, limit, values
        self.spent = 0
        self.refused = 0  # sets asked for that did not fit

    def cost(self, masked: frozenset[int]) -> int:
        return masked_set_cost(self.n, masked)

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


def scan_flips(
    scorer: MaskedScorer,
    orders: Sequence[Sequence[int]],
    evaluated: list[set[int]],
    k_max: int,
    budget: CostBudget | None = None,
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


def within_budget(
    scorer: MaskedScorer,
    ranked: list[list[int]],
    randoms: list[list[int]],
    grid: list[int],
    random_grid: list[int],
    k_max: int,
    cost_budget: int,
) -> tuple[list[set[int]], list[int | None], int, CostBudget]:
    """The masked sets of an input whose exact test does not fit, in the order the dossier
    needs them (see ``faithfulness``): returns the k evaluated per order, the scan cuts, the number of random
    seeds evaluated in full, and the budget's account."""
    n = scorer.base.shape[0]
    budget = CostBudget(n, cost_budget, scorer.values)
    scorer.score([frozenset()])  # f0 (and the prefix states) come first and free
    evaluated: list[set[int]] = [{0} for _ in ranked]
    pairs = [(i, k) for k in grid if k >= 1 for i in range(len(ranked))]
    admitted = budget.take([frozenset(ranked[i][:k]) for i, k in pairs], share=0.4)
    scorer.score(admitted)
    for i, k in pairs[: len(admitted)]:
        evaluated[i].add(k)
    cut = scan_flips(scorer, ranked, evaluated, k_max, budget, share=0.7)
    used = 0
    for order in randoms:
        sets = [frozenset(order[:k]) for k in random_grid if k >= 1]
        if not budget.fits(sets):
            budget.refused += len(sets)
            break  # a seed counts only when its whole grid is known
        scorer.score(budget.take(sets))
        used += 1
    random_evaluated = [set(random_grid) for _ in range(used)]
    cut += scan_flips(scorer, randoms[:used], random_evaluated, k_max, budget, share=1.0)
    return evaluated + random_evaluated, cut, used, budget
