"""Head-level edges on SmolLM2: the closed form (one backward pass, per-head terms kept apart)
against the per-head backward reference (one packed row per target and head, plus one with
every head masked), measured side by side in one run.

    .venv/bin/python benchmarks/bench_head_edges.py [--lengths 64 128 424] [--blocks 0 29]

Prints, per prompt length: seconds of the reference for --blocks, seconds of the closed form for
the same blocks and for all 30 blocks, the ratio, and the max |closed - reference| relative to
the largest head edge."""

from __future__ import annotations

import argparse
import time

import numpy as np

TEXT = "The quick brown fox jumps over the lazy dog while the model counts tokens. "


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--lengths", type=int, nargs="+", default=[64, 128, 424])
    parser.add_argument("--blocks", type=int, nargs="+", default=[0, 29])
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()

    import torch

    from reportgen.graph.closed_heads import closed_form_heads
    from reportgen.graph.packed import packed_head_edges
    from reportgen.models import load_model
    from reportgen.objectives import Objective

    loaded = load_model(args.model)
    model, tokenizer = loaded.model, loaded.tokenizer
    objective = Objective("logit_diff", target_id=7042, strategy="by_ref_token", contrast_id=38034)
    print(f"torch threads {torch.get_num_threads()}; blocks {args.blocks}")
    print(
        f"{'tokens':>6} {'reference s':>11} {'passes':>6} {'closed s':>8} {'ratio':>6}"
        f" {'closed all s':>12} {'MB all':>7} {'max rel diff':>12}"
    )
    for n in args.lengths:
        ids = tokenizer.encode(TEXT * (n // 8 + 2))[:n]
        start = time.perf_counter()
        reference = packed_head_edges(
            model, tokenizer, ids, objective, blocks=args.blocks, batch_size=args.batch_size
        )
        reference_s = time.perf_counter() - start
        start = time.perf_counter()
        closed = closed_form_heads(model, tokenizer, ids, objective, blocks=args.blocks)
        closed_s = time.perf_counter() - start
        start = time.perf_counter()
        everything = closed_form_heads(model, tokenizer, ids, objective)
        all_s = time.perf_counter() - start
        diff = float(np.abs(closed.heads - reference.heads).max() / np.abs(reference.heads).max())
        print(
            f"{n:>6} {reference_s:>11.1f} {reference.meta['backward_passes']:>6} {closed_s:>8.2f}"
            f" {reference_s / closed_s:>5.0f}x {all_s:>12.2f} {everything.heads.nbytes / 2**20:>7.0f}"
            f" {diff:>12.1e}"
        )


if __name__ == "__main__":
    main()
