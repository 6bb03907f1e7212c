"""AttnLRP attribution time vs the plain gradient, same model and prompt, side by side.

    .venv/bin/python benchmarks/bench_attribution.py [--lengths 64 256 1024] [--repeats 3]

Prints seconds (median of repeats) for forward+backward with and without the AttnLRP rules,
and their ratio (goal: <= 1.2x)."""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from reportgen.attribution import input_gradient
from reportgen.models import load_model
from reportgen.objectives import Objective


def timed_pair(model, ids, objective, repeats: int) -> tuple[float, float]:
    """Median seconds of plain and AttnLRP passes, interleaved so machine noise hits both alike."""
    times: dict[bool, list[float]] = {False: [], True: []}
    input_gradient(model, ids, objective, lrp=True)  # warm-up
    for _ in range(repeats):
        for lrp in (False, True):
            start = time.perf_counter()
            input_gradient(model, ids, objective, lrp=lrp)
            times[lrp].append(time.perf_counter() - start)
    return statistics.median(times[False]), statistics.median(times[True])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--lengths", type=int, nargs="+", default=[64, 256, 1024])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    loaded = load_model(args.model)
    text = "The quick brown fox jumps over the lazy dog while the model counts tokens. " * 200
    all_ids = loaded.tokenizer.encode(text)
    objective = Objective("logit_diff", target_id=7042, strategy="by_ref_token", contrast_id=38034)
    print(
        f"{'tokens':>7} {'gradient s':>11} {'AttnLRP s':>10} {'ratio':>6}  (torch threads: {torch.get_num_threads()})"
    )
    for n in args.lengths:
        ids = torch.tensor([all_ids[:n]])
        plain, lrp = timed_pair(loaded.model, ids, objective, args.repeats)
        print(f"{n:>7} {plain:>11.3f} {lrp:>10.3f} {lrp / plain:>6.2f}")


if __name__ == "__main__":
    main()
