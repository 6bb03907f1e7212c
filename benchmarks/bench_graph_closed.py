"""Attribution-graph edges: closed form (docs/method.md section 4) vs the batch-packed backward (section 3).

    .venv/bin/python benchmarks/bench_graph_closed.py [--lengths 128 512 2048] [--packed-max 512]
        [--long 10000] [--long-p 0.85] [--long-threshold TAU] [--top-per-target 64] [--threads N]

Each (method, length) runs in its own child process so the peak RSS is that run's own. Prints
seconds, peak RSS, the max difference of closed vs packed edges (|delta| / max |packed edge|,
on all edges of all transitions), and the closed-form column-sum check. The packed backward only
runs up to --packed-max tokens (it needs ~n/B backward passes per layer).

--long N runs the closed form alone on N tokens with pruning while streaming (docs/method.md section 6;
no layer's n x n edges are held): per-layer cumulative mass --long-p (default 0.85; 0 = off)
and/or the global threshold --long-threshold; activation checkpointing is on from 4,096 tokens.
It prints seconds (trace = the first progress report: forward, checkpointed backward and the
first layer's edges), peak RSS and the edges kept."""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

LENGTHS = [128, 512, 2048]
TEXT = "The quick brown fox jumps over the lazy dog while the model counts tokens. "


def _child(
    method: str,
    n: int,
    out: str,
    model_name: str,
    top: int | None,
    threads: int | None,
    prune: dict | None = None,
):
    import torch

    from reportgen.graph.closed import closed_form_graph
    from reportgen.graph.packed import build_graph
    from reportgen.models import load_model
    from reportgen.objectives import Objective

    if threads:
        torch.set_num_threads(threads)
    loaded = load_model(model_name)
    ids = loaded.tokenizer.encode(TEXT * (n // 8 + 2))[:n]
    objective = Objective("logit_diff", target_id=7042, strategy="by_ref_token", contrast_id=38034)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    reports: list[float] = []

    def progress(done: int, total: int) -> None:
        reports.append(time.perf_counter() - start)
        if prune:
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(
                f"  layer {done}/{total} at {reports[-1]:.0f} s, peak {rss:.0f} MB",
                file=sys.stderr,
                flush=True,
            )

    if method == "closed":
        graph = closed_form_graph(
            loaded.model,
            loaded.tokenizer,
            ids,
            objective,
            top_per_target=top,
            progress=progress,
            **(prune or {}),
        )
    else:
        graph = build_graph(loaded.model, loaded.tokenizer, ids, objective, top_per_target=top)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    np.savez(
        out,
        sl=graph.edge_source_layer,
        tl=graph.edge_target_layer,
        s=graph.edge_source,
        t=graph.edge_target,
        w=graph.edge_weight,
        relevance=graph.node_relevance,
    )
    meta = {
        k: v for k, v in graph.meta.items() if isinstance(v, (int, float, str, bool, type(None)))
    }
    print(
        json.dumps(
            {
                "seconds": seconds,
                "peak_rss_mb": peak / 1024,
                "model_rss_mb": before / 1024,
                "edges": graph.n_edges,
                "first_layer_s": reports[0] if reports else None,
                "meta": meta,
                "threads": torch.get_num_threads(),
            }
        )
    )


def _run(
    method: str, n: int, args: argparse.Namespace, folder: str, prune: dict | None = None
) -> tuple[dict, str]:
    out = os.path.join(folder, f"{method}-{n}.npz")
    command = [sys.executable, __file__, "--child", method, str(n), out, "--model", args.model]
    if prune:
        command += ["--prune", json.dumps(prune)]
    if args.top_per_target:
        command += ["--top-per-target", str(args.top_per_target)]
    if args.threads:
        command += ["--threads", str(args.threads)]
    result = subprocess.run(
        command, stdout=subprocess.PIPE, stderr=None if prune else subprocess.PIPE, text=True
    )
    if result.returncode != 0:
        raise SystemExit(f"{method} {n} failed:\n{(result.stderr or '')[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1]), out


def _max_rel_diff(closed: str, packed: str) -> float:
    a, b = np.load(closed), np.load(packed)
    n = int(max(a["s"].max(initial=0), a["t"].max(initial=0), b["t"].max(initial=0))) + 1

    def keyed(d):
        key = ((d["sl"].astype(np.int64) * 10_000 + d["tl"]) * n + d["t"]) * n + d["s"]
        return dict(zip(key.tolist(), d["w"].astype(np.float64).tolist(), strict=True))

    ka, kb = keyed(a), keyed(b)
    scale = max(abs(v) for v in kb.values())
    worst = max(abs(ka.get(k, 0.0) - kb.get(k, 0.0)) for k in ka.keys() | kb.keys())
    return worst / scale


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--lengths", type=int, nargs="+", default=LENGTHS)
    parser.add_argument("--packed-max", type=int, default=512)
    parser.add_argument(
        "--long", type=int, default=None, help="also run the closed form on N tokens"
    )
    parser.add_argument("--long-p", type=float, default=0.85, help="cumulative mass (0: off)")
    parser.add_argument("--long-threshold", type=float, default=0.0, help="|A| > tau")
    parser.add_argument("--top-per-target", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--child", nargs=3, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--prune", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        method, n, out = args.child
        prune = json.loads(args.prune) if args.prune else None
        _child(method, int(n), out, args.model, args.top_per_target, args.threads, prune)
        return
    lengths = [] if args.long and args.lengths == LENGTHS else list(args.lengths)
    top = args.top_per_target
    print(f"model {args.model}, top_per_target={top}, threads={args.threads or 'default'}")
    header = (
        f"{'tokens':>7} {'closed s':>9} {'closed MB':>10} {'packed s':>9} {'packed MB':>10} "
        f"{'speed-up':>8} {'max rel diff':>12} {'col err':>8} {'edges':>10} {'passes':>7}"
    )
    if lengths:
        print(header)
    with tempfile.TemporaryDirectory() as folder:
        for n in lengths:
            closed, closed_file = _run("closed", n, args, folder)
            if n <= args.packed_max:
                packed, packed_file = _run("packed", n, args, folder)
                diff = f"{_max_rel_diff(closed_file, packed_file):>12.2e}"
                packed_cols = f"{packed['seconds']:>9.2f} {packed['peak_rss_mb']:>10.0f} "
                ratio = f"{packed['seconds'] / closed['seconds']:>7.1f}x"
                passes = packed["meta"]["backward_passes"]
            else:
                packed_cols, ratio, diff, passes = (
                    f"{'-':>9} {'-':>10} ",
                    f"{'-':>8}",
                    f"{'-':>12}",
                    "-",
                )
            print(
                f"{n:>7} {closed['seconds']:>9.2f} {closed['peak_rss_mb']:>10.0f} {packed_cols}"
                f"{ratio} {diff} {closed['meta']['column_sum_error']:>8.1e} {closed['edges']:>10} "
                f"{passes!s:>7}",
                flush=True,
            )
    if lengths:
        print(
            "peak MB = the child process's max RSS (model included); speed-up = packed s / closed"
            " s; max rel diff = max |closed - packed| / max |packed| over all edges (float32"
            " model); col err = closed-form max |column sum - source relevance| / sum |source"
            " relevance|; passes = packed backward passes (closed: 1)"
        )
    if args.long:
        prune = {}
        if args.long_p:
            prune["cumulative_mass"] = args.long_p
        if args.long_threshold:
            prune["min_edge_weight"] = args.long_threshold
        prune = prune or {"min_edge_weight": 0.0}
        with tempfile.TemporaryDirectory() as folder:
            result, _ = _run("closed", args.long, args, folder, prune)
        meta = result["meta"]
        print(
            f"long prompt: {args.long} tokens, closed form, pruning while streaming {prune}\n"
            f"  seconds {result['seconds']:.1f} (first layer done at "
            f"{result['first_layer_s']:.1f} s), peak RSS {result['peak_rss_mb']:.0f} MB "
            f"(model loaded: {result['model_rss_mb']:.0f} MB), threads {result['threads']}\n"
            f"  edges kept {result['edges']}, checkpointed {meta.get('checkpointed')}, "
            f"recomputed chunks {meta.get('recomputed_chunks', 0)}, "
            f"column-sum error {meta['column_sum_error']:.1e}"
        )


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
