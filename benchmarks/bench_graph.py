"""Batch-packed multi-target backpropagation vs one target per backward pass, side by side.

    .venv/bin/python benchmarks/bench_graph.py [--lengths 128 512 1024] [--layers 2]

For each prompt length: backward passes and seconds per block transition for both methods on
the same SmolLM2 layers (the first --layers blocks; every block costs about the same), their
ratio, the packing size B chosen from the memory budget, and the process's peak RSS. The
one-per-pass reference is measured on a sample of --sample targets per layer and scaled to n
(each of its passes costs the same), so long prompts stay affordable."""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import torch

import lxt
from lxt import decoder_blocks
from reportgen.graph.packed import model_packing_size, packed_rows
from reportgen.graph.trace import chain, trace
from reportgen.models import load_model
from reportgen.objectives import Objective


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lengths", type=int, nargs="+", default=[128, 512, 1024])
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--sample", type=int, default=16)
    parser.add_argument("--budget-gb", type=float, default=2.0)
    args = parser.parse_args()
    loaded = load_model("smollm2-135m-instruct")
    model = loaded.model
    text = "The quick brown fox jumps over the lazy dog while the model counts tokens. " * 400
    all_ids = loaded.tokenizer.encode(text)
    objective = Objective("logit_diff", target_id=7042, strategy="by_ref_token", contrast_id=38034)
    blocks = decoder_blocks(model)
    print(
        f"torch threads {torch.get_num_threads()}; per-layer numbers averaged over {args.layers} layers"
    )
    print(
        f"{'tokens':>6} {'B':>5} {'packed passes':>13} {'packed s':>9} {'1/pass passes':>13} {'1/pass s':>9} {'speedup':>8} {'0.7B':>6} {'max diff':>9} {'peak GB':>8}"
    )
    for n in args.lengths:
        ids = torch.tensor([all_ids[:n]])
        traced = trace(model, ids, objective, split=False)
        batch = model_packing_size(model, traced, args.budget_gb)
        packed_s = single_s = 0.0
        passes = 0
        max_diff = 0.0
        sample = list(np.linspace(0, n - 1, min(args.sample, n)).astype(int))
        with lxt.lrp_rules(model), torch.enable_grad():
            for layer in range(args.layers):
                source, seed = traced.states[layer], traced.grads[layer + 1]
                run = chain(blocks, traced.calls, range(layer, layer + 1))
                start = time.perf_counter()
                rows = {}
                for first in range(0, n, batch):
                    chunk = list(range(first, min(n, first + batch)))
                    for j, row in zip(chunk, packed_rows(run, source, seed, chunk), strict=True):
                        rows[j] = row
                    passes += 1
                packed_s += time.perf_counter() - start
                start = time.perf_counter()
                for j in sample:
                    single = packed_rows(run, source, seed, [int(j)])[0]
                    max_diff = max(
                        max_diff,
                        float(
                            np.abs(single - rows[int(j)]).max()
                            / (np.abs(rows[int(j)]).max() + 1e-12)
                        ),
                    )
                single_s += (time.perf_counter() - start) * n / len(sample)
        packed_s /= args.layers
        single_s /= args.layers
        per_layer_passes = passes // args.layers
        print(
            f"{n:>6} {batch:>5} {per_layer_passes:>13} {packed_s:>9.3f} {n:>13} {single_s:>9.3f} {single_s / packed_s:>7.1f}x {0.7 * min(batch, n):>6.0f} {max_diff:>9.1e} {peak_rss_gb():>8.2f}"
        )


if __name__ == "__main__":
    main()
