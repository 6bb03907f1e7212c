"""Compare our AttnLRP input relevances with the upstream reference ``lxt==2.1`` (PyPI).

Runs in reportgen's venv; upstream runs in its own venv through
scripts/upstream_lxt_relevance.py on the same weights and token ids:

    .venv/bin/python benchmarks/compare_upstream_lxt.py [--ref-python /tmp/lxtref/bin/python]
    .venv/bin/python benchmarks/compare_upstream_lxt.py --model qwen2.5-coder-0.5b-instruct

``--model``: an embedded Llama or Qwen2 model (default SmolLM2-135M). The Qwen2.5-Coder models
get three code prompts besides the eight below.

Exits non-zero when any cosine similarity is below --min-cosine (default 0.9999: dropping any single rule falls below it).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from reportgen.attribution import attribute
from reportgen.inputs import prepare_input, resolve_token
from reportgen.models import embedded_path, load_model
from reportgen.objectives import Objective
from reportgen.question import PromptSpec

MODEL = "smollm2-135m-instruct"
REF_SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "upstream_lxt_relevance.py"
LONG = (
    "The lighthouse keeper kept a careful log of every ship that passed the rocky point. "
    "In the winter of that year, storms came almost every night, and the old lamp had to be "
    "trimmed and polished before dusk. One evening a small fishing boat, its mast broken, "
    "drifted toward the reef while the keeper's daughter watched from the gallery. She ran "
    "down the spiral stairs, lit a second lantern, and signalled until the crew turned their "
    "bow toward the harbour. The next morning the fishermen brought a basket of fresh fish "
    "and a carved wooden bird as thanks. Years later, when she became the keeper herself, "
    "the wooden bird still stood on the shelf beside the log book. The bird was carved from"
)
# (prompt, chat template?, target, contrast or None for max_logit)
CASES = [
    (
        "Q: Which city is the capital of France?\nA: The capital of France is",
        False,
        " Paris",
        " London",
    ),
    ("The capital of France is", True, "The", None),
    (
        "Alice gave the book to Bob because Bob asked for it. The book now belongs to",
        False,
        " Bob",
        " Alice",
    ),
    ("What is 7 times 8? Answer with a number only.", True, "5", "4"),
    (
        "At sea level, pure water freezes at a temperature of zero degrees",
        False,
        " Celsius",
        " Fahrenheit",
    ),
    ("Write one word that rhymes with cat.", True, "Hat", None),
    (LONG, False, " wood", " oak"),
    ("Summarise in one word how the daughter felt: " + LONG, True, "Pro", None),
]
# the code models (Qwen2.5-Coder) also get code: completion, chat, and a long source
CODE_CASES = [
    (
        'def is_prime(n):\n    """Return True if n is prime."""\n    if n < 2:\n        return',
        False,
        " False",
        " True",
    ),
    (
        "Write a Python function that returns the last element of a list.",
        True,
        "```",
        "Here",
    ),
    (
        "def mean(values):\n    total = 0\n    for v in values:\n        total += v\n"
        "    return total /",
        False,
        " len",
        " total",
    ),
]


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a, b, dim=0))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref-python", default="/tmp/lxtref/bin/python")
    parser.add_argument("--min-cosine", type=float, default=0.9999)
    parser.add_argument("--model", default=MODEL, help="an embedded llama or qwen2 model")
    args = parser.parse_args()

    m = load_model(args.model)
    cases = CASES + (CODE_CASES if m.model_type == "qwen2" else [])
    ours, ref_cases = [], []
    for prompt, chat, target, contrast in cases:
        inp = prepare_input(m.tokenizer, PromptSpec(prompt, chat=chat, prefix=""))
        t = resolve_token(m.tokenizer, target, "target").id
        c = resolve_token(m.tokenizer, contrast, "contrast").id if contrast else None
        objective = (
            Objective("logit_diff", t, "by_ref_token", c)
            if c is not None
            else Objective("max_logit", t)
        )
        ours.append(attribute(m, inp, objective))
        ref_cases.append({"token_ids": list(inp.token_ids), "target_id": t, "contrast_id": c})

    with tempfile.TemporaryDirectory() as tmp:
        cases_path, out_path = Path(tmp, "cases.json"), Path(tmp, "out.json")
        spec = {"model_dir": str(embedded_path(args.model)), "cases": ref_cases}
        cases_path.write_text(json.dumps(spec))
        # without PYTHONPATH: a checkout on it would shadow upstream's lxt with ours
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        subprocess.run(
            [args.ref_python, str(REF_SCRIPT), cases_path, out_path], check=True, env=env
        )
        ref = json.loads(out_path.read_text())

    print(
        f"{'prompt':<34} {'chat':>4} {'n':>4} {'cosine':>8} {'relmax':>8} "
        f"{'expl ours':>10} {'expl ref':>10} {'sumR/e ours':>11} {'sumR/e ref':>10}"
    )
    worst = 1.0
    for (prompt, chat, *_), a, r_ref, e_ref in zip(
        cases, ours, ref["relevance"], ref["explained"], strict=True
    ):
        r_ours, r_up = torch.tensor(a.relevance), torch.tensor(r_ref)
        cos = cosine(r_ours, r_up)
        worst = min(worst, cos)
        relmax = float((r_ours - r_up).abs().max() / r_up.abs().max())
        label = prompt.replace("\n", " ")[:32]
        print(
            f"{label:<34} {'y' if chat else 'n':>4} {len(r_up):>4} {cos:>8.5f} {relmax:>8.2e} "
            f"{a.explained:>10.4f} {e_ref:>10.4f} {a.relevance_sum / a.explained:>11.4f} "
            f"{float(r_up.sum()) / e_ref:>10.4f}"
        )
    print(f"{args.model}: min cosine {worst:.5f} (threshold {args.min_cosine})")
    return 0 if worst >= args.min_cosine else 1


if __name__ == "__main__":
    sys.exit(main())
