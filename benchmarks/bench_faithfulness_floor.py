"""How far the flip test of short cases is from what this machine can do at all.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_faithfulness_floor.py CASE.toml ...

For each case, side by side in one run:

* the flip test as a build computes it (exact curves at every k, 8 orderings): seconds, masked
  sets, token-forwards (suffix tokens pushed through the model after prefix reuse);
* the model's floating-point work per token-forward (2 x the weights of its decoder layers) and
  the throughput the flip test reached, against the float32 matrix-product peak measured here
  on the model's own layer shapes;
* the floor of the exact definitions: the same sets scored along a trie of their masked
  positions (every shared prefix of masks computed once, the least any exact scheme forwards),
  at the measured peak.

The ratios say how much an exact speed-up could still gain; the floor in seconds says whether
a target such as 10 s per case is reachable on this machine without changing the definitions.
The trie floor is generous: scored along a trie, most forwards would carry a handful of tokens,
and on a CPU every forward call streams all the weights from memory (SmolLM2 in float32: about
0.4 GB, which measured 0.1 s per call on one core of this 2-core machine, whatever the token
count), so the few large batched forwards of today's scheme are faster in practice.

Measured 2026-12-02 (the 2-core machine, a collection running beside it at nice 10):
primary-colors-yellow, 44 tokens, 303 sets: 32.6 s, 12,262 token-forwards at 80 GFLOP/s =
76 % of the 105 GFLOP/s peak; trie 6,481 token-forwards, floor 13.1 s (now / floor 2.5)."""

from __future__ import annotations

import argparse
import random
import time

import torch

from reportgen.cases import load_case
from reportgen.compute import case_faithfulness
from reportgen.models import load_model
from reportgen.pipeline import attribute_prepared, prepare_question


def trie_token_forwards(sets: set[frozenset[int]], n: int) -> int:
    """Distinct (position, masks up to it) states after each set's first masked position: what a
    forward along a trie of the sets' masks computes, the unmasked prefix being free."""
    nodes: set[tuple[int, frozenset[int]]] = set()
    for masked in sets:
        if not masked:
            continue
        ordered = sorted(masked)
        for position in range(ordered[0], n):
            nodes.add((position, frozenset(p for p in ordered if p <= position)))
    return len(nodes)


def layer_flops_per_token(module) -> float:
    """2 x the weights of the decoder layers' linear maps (attention scores are small here)."""
    layers = module.model.layers
    weights = sum(m.weight.numel() for m in layers.modules() if isinstance(m, torch.nn.Linear))
    return 2.0 * weights


def matmul_peak(module, rows: int = 512, repeats: int = 20) -> float:
    """FLOP/s of float32 products with this model's own layer shapes (rows x in @ in x out)."""
    shapes = {
        tuple(m.weight.shape)
        for m in module.model.layers[0].modules()
        if isinstance(m, torch.nn.Linear)
    }
    best = 0.0
    with torch.no_grad():
        for out_features, in_features in shapes:
            x = torch.randn(rows, in_features)
            w = torch.randn(out_features, in_features)
            x @ w.T  # warm
            start = time.perf_counter()
            for _ in range(repeats):
                x @ w.T
            seconds = time.perf_counter() - start
            best = max(best, 2.0 * rows * in_features * out_features * repeats / seconds)
    return best


def flip_sets(result: dict, special: list[bool]) -> set[frozenset[int]]:
    """The masked sets of the exact flip test (the same orders as ``faithfulness`` builds)."""
    n = len(special)
    maskable = [i for i in range(n) if not special[i]]
    k_max = result["budget"]
    orders = [result["order"][name] for name in ("attnlrp", "grad_x_input", "gradient")]
    for seed in range(result["random_seeds"]):
        order = list(maskable)
        random.Random(seed).shuffle(order)
        orders.append(order)
    return {frozenset(o[:k]) for o in orders for k in range(k_max + 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("cases", nargs="+")
    args = parser.parse_args()
    models = {}
    header = (
        f"{'case':34} {'tokens':>6} {'sets':>5} {'seconds':>8} {'forwards':>9} {'GFLOP/s':>8} "
        f"{'of peak':>7} {'trie':>7} {'floor s':>8} {'now/floor':>9}"
    )
    print(header, flush=True)
    for path in args.cases:
        case = load_case(path)
        if case.model not in models:
            loaded = load_model(case.model)
            peak = matmul_peak(loaded.model)
            models[case.model] = (loaded, layer_flops_per_token(loaded.model), peak)
            print(f"{case.model}: float32 matmul peak on its layer shapes {peak / 1e9:.1f} GFLOP/s")
        loaded, per_token, peak = models[case.model]
        question = prepare_question(loaded, case.question)
        attribution = attribute_prepared(loaded, question)
        start = time.perf_counter()
        result = case_faithfulness(loaded, attribution, question.objective)
        seconds = time.perf_counter() - start
        sets = flip_sets(result, list(attribution.special))
        n = len(attribution.token_ids)
        trie = trie_token_forwards(sets, n)
        achieved = result["forwarded_tokens"] * per_token / seconds
        floor = trie * per_token / peak
        print(
            f"{case.id[:34]:34} {n:6d} {result['masked_sets']:5d} {seconds:8.1f} "
            f"{result['forwarded_tokens']:9d} {achieved / 1e9:8.1f} {achieved / peak:7.0%} "
            f"{trie:7d} {floor:8.1f} {seconds / floor:9.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
