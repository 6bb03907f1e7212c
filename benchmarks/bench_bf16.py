"""What bfloat16 does to the explanation: the same prompts in bfloat16 and float32 on one
device, input relevance and closed-form graph edges compared.

    .venv/bin/python benchmarks/bench_bf16.py [--model qwen2.5-coder-0.5b-instruct] [--device cpu]

Per prompt: the input relevance's cosine and max relative error (max |a - b| / max |b|) of
bfloat16 against float32, the explained logit difference in both, whether the top-5 tokens by
|relevance| are the same set; the unpruned closed-form graph's edge cosine, max relative edge
error and relative L2 error (||a - b|| / ||b|| over all edges); and the edges the dossier keeps
(cumulative mass 0.85 per transition) that bfloat16 keeps too (overlap of the kept sets,
|kept_bf16 & kept_fp32| / |kept_fp32|). docs/method.md's bfloat16 section quotes its output.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from compare_upstream_lxt import CASES, CODE_CASES  # noqa: E402
from gpu_check import cosine, edge_vectors, max_rel  # noqa: E402

from reportgen.graph.closed import closed_form_graph  # noqa: E402
from reportgen.graph.prune import prune_cumulative_mass  # noqa: E402
from reportgen.inputs import prepare_input, resolve_token  # noqa: E402
from reportgen.models import load_model  # noqa: E402
from reportgen.objectives import Objective  # noqa: E402
from reportgen.question import PromptSpec  # noqa: E402

# code completion, code chat, fact chat, arithmetic chat, a 140-token story
PROMPTS = [CODE_CASES[0], CODE_CASES[2], CASES[0], CASES[3], CASES[6]]


def kept(graph, p: float = 0.85) -> set:
    pruned = prune_cumulative_mass(graph, p)
    return set(
        zip(
            pruned.edge_source_layer.tolist(),
            pruned.edge_target_layer.tolist(),
            pruned.edge_source.tolist(),
            pruned.edge_target.tolist(),
            strict=True,
        )
    )


def main() -> int:
    from reportgen.attribution import attribute

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="qwen2.5-coder-0.5b-instruct")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-graph", action="store_true", help="input relevance only")
    args = parser.parse_args()

    models = {
        dtype: load_model(args.model, device=args.device, dtype=dtype)
        for dtype in ("float32", "bfloat16")
    }
    print(
        f"{'prompt':<30} {'n':>4} {'cos R':>8} {'relmax R':>9} {'f fp32':>8} {'f bf16':>8} "
        f"{'top5':>5} {'cos E':>8} {'relmax E':>9} {'relL2 E':>8} {'kept':>6} {'s':>6}",
        flush=True,
    )
    for prompt, chat, target, contrast in PROMPTS:
        start = time.perf_counter()
        tokenizer = models["float32"].tokenizer
        inputs = prepare_input(tokenizer, PromptSpec(prompt, chat=chat))
        t = resolve_token(tokenizer, target, "target").id
        c = resolve_token(tokenizer, contrast, "contrast").id if contrast else None
        objective = (
            Objective("logit_diff", t, "by_ref_token", c)
            if c is not None
            else Objective("max_logit", t)
        )
        results = {d: attribute(m, inputs, objective) for d, m in models.items()}
        ra = np.array(results["bfloat16"].relevance, np.float64)
        rb = np.array(results["float32"].relevance, np.float64)
        top = set(np.argsort(-np.abs(ra))[:5]) == set(np.argsort(-np.abs(rb))[:5])
        line = (
            f"{prompt.replace(chr(10), ' ')[:30]:<30} {len(rb):>4} {cosine(ra, rb):8.5f} "
            f"{max_rel(ra, rb):9.2e} {results['float32'].explained:8.3f} "
            f"{results['bfloat16'].explained:8.3f} {'same' if top else 'diff':>5}"
        )
        if not args.no_graph:
            ids = list(inputs.token_ids)
            graphs = {
                d: closed_form_graph(m.model, m.tokenizer, ids, objective)
                for d, m in models.items()
            }
            wa, wb = edge_vectors(graphs["bfloat16"], graphs["float32"])
            l2 = float(np.linalg.norm(wa - wb) / np.linalg.norm(wb))
            ka, kb = kept(graphs["bfloat16"]), kept(graphs["float32"])
            line += (
                f" {cosine(wa, wb):8.5f} {max_rel(wa, wb):9.2e} {l2:8.4f} "
                f"{len(ka & kb) / len(kb):6.3f}"
            )
        print(line + f" {time.perf_counter() - start:6.0f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
