"""The fast faithfulness path (prefix key/value reuse, last-position logits, batching by prefix
length, a k grid with an exact flip scan) against the exhaustive computation of the
definitions: one full forward per masked set, on tiny float64 models of several architectures."""

from __future__ import annotations

import random

import pytest
import torch
from tiny_models import tiny_model

from reportgen.attribution import cache_argument
from reportgen.faithfulness import faithfulness
from reportgen.objectives import Objective

pytestmark = pytest.mark.usefixtures("one_thread")

ARCHS = ["llama", "qwen2", "mistral", "gemma3_text", "olmo3", "phi3", "gpt2"]


def exhaustive(model, ids, objective, relevance, special, budget, seeds):
    """Today's definitions, computed the slow and obvious way."""
    embed = model.get_input_embeddings()
    with torch.no_grad():
        base = embed(torch.tensor([ids]))[0]

    def f(masked):
        x = base.clone()
        if masked:
            x[sorted(masked)] = 0.0
        with torch.no_grad():
            logits = model(inputs_embeds=x[None], use_cache=False).logits[0, -1]
        return float(objective.value(logits))

    x = base.clone().requires_grad_(True)
    value = objective.value(model(inputs_embeds=x[None], use_cache=False).logits[0, -1])
    (grad,) = torch.autograd.grad(value, x)
    maskable = [i for i in range(len(ids)) if not special[i]]
    k_max = min(budget, len(maskable))
    gxi = (x.detach() * grad).sum(-1).tolist()
    norm = grad.norm(dim=-1).tolist()
    orders = {
        name: sorted(maskable, key=lambda i: -float(s[i]))
        for name, s in (("attnlrp", relevance), ("grad_x_input", gxi), ("gradient", norm))
    }
    randoms = []
    for seed in range(seeds):
        o = list(maskable)
        random.Random(seed).shuffle(o)
        randoms.append(o)
    curve = {name: [f(o[:k]) for k in range(k_max + 1)] for name, o in orders.items()}
    seed_curves = [[f(o[:k]) for k in range(k_max + 1)] for o in randoms]
    curve["random"] = [sum(c[k] for c in seed_curves) / seeds for k in range(k_max + 1)]

    def flip(c):
        if c[0] <= 0:
            return None
        return next((k for k in range(1, len(c)) if c[k] <= 0), None)

    flips = {name: flip(c) for name, c in curve.items() if name != "random"}
    seed_flips = [flip(c) for c in seed_curves]
    aopc = {name: sum(c[0] - v for v in c[1:]) / (len(c) - 1) for name, c in curve.items()}
    return curve, flips, seed_flips, aopc


def _case(arch: str, n: int = 24, seed: int = 0):
    model = tiny_model(arch, dtype=torch.float64, seed=seed)
    gen = torch.Generator().manual_seed(seed + 1)
    ids = torch.randint(3, 90, (n,), generator=gen).tolist()
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0, -1]
    target, contrast = logits.topk(2).indices.tolist()
    objective = Objective(
        "logit_diff", target_id=target, strategy="by_ref_token", contrast_id=contrast
    )
    relevance = torch.randn(n, generator=gen, dtype=torch.float64).tolist()
    special = [i == 0 for i in range(n)]
    return model, ids, objective, relevance, special


@pytest.mark.parametrize("arch", ARCHS)
def test_fast_path_equals_the_exhaustive_definitions(arch):
    model, ids, objective, relevance, special = _case(arch)
    assert cache_argument(model) is not None  # the prefix reuse is what is under test
    budget, seeds = 12, 3
    curve, flips, seed_flips, aopc = exhaustive(
        model, ids, objective, relevance, special, budget, seeds
    )
    # a batch size and token budget that force many small, mixed-prefix batches
    got = faithfulness(
        model,
        ids,
        objective,
        relevance,
        special,
        budget=budget,
        random_seeds=seeds,
        insertion=False,
        batch_size=5,
        token_budget=40,
    )
    for name in curve:
        assert got["curves"][name] == pytest.approx(curve[name], abs=1e-9, rel=1e-9), name
        assert got["aopc"][name] == pytest.approx(aopc[name], abs=1e-9, rel=1e-9), name
    for name, k in flips.items():
        assert got["flip_k"][name] == k, name
    assert got["random_flip_k_seeds"] == seed_flips
    # the prefix reuse really saved work: fewer tokens than a full forward per masked set
    assert got["forwarded_tokens"] < got["masked_sets"] * len(ids)


@pytest.mark.parametrize("arch", ["llama", "mistral", "gpt2"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_grid_keeps_flip_k_exact(arch, seed):
    model, ids, objective, relevance, special = _case(arch, n=20, seed=seed)
    budget, seeds = 15, 3
    curve, flips, seed_flips, _ = exhaustive(
        model, ids, objective, relevance, special, budget, seeds
    )
    got = faithfulness(
        model,
        ids,
        objective,
        relevance,
        special,
        budget=budget,
        random_seeds=seeds,
        insertion=False,
        points=[5, 10],
    )
    assert got["points"] == [0, 5, 10, 15]
    for name, k in flips.items():
        assert got["flip_k"][name] == k, name
    assert got["random_flip_k_seeds"] == seed_flips
    for name in curve:
        for k, value in enumerate(got["curves"][name]):
            if value is not None:
                assert value == pytest.approx(curve[name][k], abs=1e-9), (name, k)
        for k in got["points"]:
            assert got["curves"][name][k] is not None
        expected = sum(curve[name][0] - curve[name][k] for k in (5, 10, 15)) / 3
        assert got["aopc"][name] == pytest.approx(expected, abs=1e-9)
    # the grid evaluated fewer sets than the full curves would (unless everything flipped late)
    assert got["masked_sets"] <= (budget + 1) * (3 + seeds)


def test_progress_reports_sets_done_of_total():
    model, ids, objective, relevance, special = _case("llama", n=12)
    seen = []
    got = faithfulness(
        model,
        ids,
        objective,
        relevance,
        special,
        budget=6,
        random_seeds=2,
        insertion=False,
        progress=lambda done, total: seen.append((done, total)),
    )
    assert seen and all(0 < d <= t for d, t in seen)
    assert seen[-1][0] == seen[-1][1] == got["masked_sets"] - 1  # the empty set comes free


def _budgeted(
    model, ids, objective, relevance, special, cost_budget, batch_size=16, exact_if_fits=False
):
    """``exact_if_fits``: the dossier's call, exact at every k when the whole test fits."""
    return faithfulness(
        model,
        ids,
        objective,
        relevance,
        special,
        budget=15,
        random_seeds=3,
        insertion=False,
        points=[5, 10],
        random_points=[10],
        cost_budget=cost_budget,
        batch_size=batch_size,
        exact_if_fits=exact_if_fits,
    )


def test_an_ample_cost_budget_changes_nothing_but_the_order_of_work():
    model, ids, objective, relevance, special = _case("llama", n=20, seed=1)
    free = faithfulness(
        model,
        ids,
        objective,
        relevance,
        special,
        budget=15,
        random_seeds=3,
        insertion=False,
        points=[5, 10],
    )
    capped = _budgeted(model, ids, objective, relevance, special, cost_budget=10**9)
    assert capped["flip_k"] == free["flip_k"]
    assert capped["random_flip_k_seeds"] == free["random_flip_k_seeds"]
    assert capped["random_seeds_used"] == 3 and capped["flip_bounds"] == {}
    for name in ("attnlrp", "grad_x_input", "gradient"):
        for a, b in zip(capped["curves"][name], free["curves"][name], strict=True):
            assert (a is None) == (b is None) or b is None
            if a is not None and b is not None:
                assert a == pytest.approx(b, abs=1e-12)
    assert 0 < capped["cost_spent"] <= 10**9 and capped["sets_refused"] == 0


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("cost_budget", [60, 200, 600])
def test_a_tight_cost_budget_reports_only_exact_values_and_honest_bounds(seed, cost_budget):
    model, ids, objective, relevance, special = _case("mistral", n=20, seed=seed)
    curve, flips, seed_flips, _ = exhaustive(model, ids, objective, relevance, special, 15, 3)
    got = _budgeted(model, ids, objective, relevance, special, cost_budget)
    assert got["cost_spent"] <= cost_budget
    for name in ("attnlrp", "grad_x_input", "gradient"):
        for k, value in enumerate(got["curves"][name]):
            if value is not None:
                assert value == pytest.approx(curve[name][k], abs=1e-9), (name, k)
        if name in got["flip_bounds"]:
            low, high = got["flip_bounds"][name]
            assert got["flip_k"][name] is None
            assert flips[name] is None or flips[name] >= low
            if high is not None:
                assert flips[name] is not None and flips[name] <= high
        else:
            assert got["flip_k"][name] == flips[name], name
    used = got["random_seeds_used"]
    assert 0 <= used <= 3
    if used == 3 and "random" not in got["flip_bounds"]:
        assert got["random_flip_k_seeds"] == seed_flips
    for k in got["aopc_points"]:
        assert all(
            got["curves"][name][k] is not None for name in got["curves"] if name != "random" or used
        )


def test_what_a_cost_budget_evaluates_does_not_depend_on_the_batch_size():
    model, ids, objective, relevance, special = _case("llama", n=20, seed=2)
    one = _budgeted(model, ids, objective, relevance, special, 200, batch_size=1)
    many = _budgeted(model, ids, objective, relevance, special, 200, batch_size=16)
    for name in one["curves"]:
        assert [v is None for v in one["curves"][name]] == [v is None for v in many["curves"][name]]
    assert one["flip_k"] == many["flip_k"] and one["flip_bounds"] == many["flip_bounds"]
    assert one["cost_spent"] == many["cost_spent"]


def test_a_test_that_fits_its_budget_is_the_exact_one_and_one_token_less_samples_it():
    model, ids, objective, relevance, special = _case("qwen2", n=20, seed=3)
    curve, flips, seed_flips, aopc = exhaustive(model, ids, objective, relevance, special, 15, 3)
    sampled = _budgeted(model, ids, objective, relevance, special, 1, exact_if_fits=True)
    whole = sampled["exact_cost"]
    exact = _budgeted(model, ids, objective, relevance, special, whole, exact_if_fits=True)
    # the cost model counts n - m per set; batches by m forward at least that
    assert whole <= exact["forwarded_tokens"] - len(ids) < 1.25 * whole
    assert exact["points"] is None and "cost_budget" not in exact and "exact_cost" not in exact
    for name in ("attnlrp", "grad_x_input", "gradient", "random"):
        assert exact["curves"][name] == pytest.approx(curve[name], abs=1e-9), name
        assert exact["aopc"][name] == pytest.approx(aopc[name], abs=1e-9), name
    assert {k: exact["flip_k"][k] for k in flips} == flips
    assert exact["random_flip_k_seeds"] == seed_flips
    # one token-forward short of the whole test: sampled on the grid, within the budget
    short = _budgeted(model, ids, objective, relevance, special, whole - 1, exact_if_fits=True)
    assert short["points"] == [0, 5, 10, 15] and short["exact_cost"] == whole
    assert short["cost_budget"] == whole - 1 and short["cost_spent"] <= whole - 1
    assert any(v is None for v in short["curves"]["attnlrp"])


def _batches(model, n, sets):
    """(rows, positions) of each forward a MaskedScorer runs for ``sets`` of an n-token input,
    and the values it gives."""
    import lxt
    from reportgen.clean_forward import clean_forward
    from reportgen.faithfulness.scoring import MaskedScorer

    ids = torch.randint(3, 90, (1, n), generator=torch.Generator().manual_seed(n))
    objective = Objective("logit_diff", target_id=5, strategy="by_ref_token", contrast_id=7)
    base = model.get_input_embeddings()(ids)[0].detach()
    fill = torch.zeros_like(base[0])
    seen = []

    def hook(module, args, kwargs):
        hidden = args[0] if args else kwargs["hidden_states"]
        seen.append(tuple(hidden.shape[:2]))

    handle = lxt.decoder_blocks(model)[0].register_forward_pre_hook(hook, with_kwargs=True)
    try:
        clean = clean_forward(model, ids[0].tolist())  # the prefix states: one whole read
        scorer = MaskedScorer(model, base, fill, objective, 16, 8192, None, clean=clean)
        values = scorer.score(sets)
    finally:
        handle.remove()
    return seen, values, ids, objective


def test_long_rows_are_not_padded_far_beyond_their_own_suffix():
    """A batch runs every row from its earliest masked position: rows longer than 512 tokens
    join only while the padding stays small; short rows batch as they come. Either way each
    set's f is its own full forward's."""
    model = tiny_model("llama", dtype=torch.float64)
    n = 700
    early, late = frozenset({40}), [frozenset({690}), frozenset({695, 698})]
    seen, values, ids, objective = _batches(model, n, [early, *late])
    # the prefix forward, the two late sets together (10 positions), the early set alone
    assert seen == [(1, n), (2, 10), (1, n - 40)]
    base = model.get_input_embeddings()(ids)[0].detach()
    for masked in [early, *late]:
        x = base.clone()
        x[sorted(masked)] = 0.0
        with torch.no_grad():
            logits = model(inputs_embeds=x[None], use_cache=False).logits[0, -1]
        assert values[masked] == pytest.approx(float(objective.value(logits)), rel=1e-10, abs=1e-12)
    short, _, _, _ = _batches(model, 300, [frozenset({20}), frozenset({290}), frozenset({295})])
    assert short == [(1, 300), (3, 280)]  # padded: a short row's forward is mostly fixed cost
