"""AttnLRP input relevance from the upstream reference ``lxt==2.1`` (efficient implementation).

Runs in a separate venv with transformers<5 and upstream lxt (see benchmarks/compare_upstream_lxt.py
for how to build it), never in reportgen's own venv:

    /tmp/lxtref/bin/python scripts/upstream_lxt_relevance.py cases.json out.json

cases.json: {"model_dir": str, "cases": [{"token_ids": [...], "target_id": int,
"contrast_id": int | null}]}.  out.json: {"relevance": [[float per token] per case],
"explained": [float per case]}, where explained = logit[target] - logit[contrast] (or just
logit[target] when contrast_id is null) at the last position.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from lxt.efficient import monkey_patch
from transformers import AutoModelForCausalLM, LlamaConfig, PretrainedConfig, Qwen2Config
from transformers.models.llama import modeling_llama
from transformers.models.qwen2 import modeling_qwen2

#: model_type -> (config class, modeling module upstream lxt patches)
ARCHITECTURES = {
    "llama": (LlamaConfig, modeling_llama),
    "qwen2": (Qwen2Config, modeling_qwen2),
}


def load_config(model_dir: Path) -> PretrainedConfig:
    """The folder's config.json is written by transformers 5, which nests rope_theta in
    rope_parameters; transformers 4.x would silently fall back to its default theta."""
    data = json.loads((model_dir / "config.json").read_text())
    rope = data.pop("rope_parameters", None) or {}
    if "rope_theta" in rope:
        data.setdefault("rope_theta", rope["rope_theta"])
    if rope.get("rope_type", "default") != "default":
        data.setdefault("rope_scaling", {k: v for k, v in rope.items() if k != "rope_theta"})
    if data.get("model_type") not in ARCHITECTURES:
        raise SystemExit(f"unsupported model_type {data.get('model_type')!r} in {model_dir}")
    config_class, _ = ARCHITECTURES[data["model_type"]]
    return config_class(**data)


def relevance(model, token_ids: list[int], target: int, contrast: int | None):
    ids = torch.tensor([token_ids])
    embeds = model.get_input_embeddings()(ids).detach().requires_grad_(True)
    logits = model(inputs_embeds=embeds, use_cache=False).logits[0, -1].float()
    value = logits[target] - (logits[contrast] if contrast is not None else 0.0)
    value.backward()
    return (embeds * embeds.grad).sum(-1)[0].tolist(), float(value.detach())


def main(cases_path: str, out_path: str) -> None:
    spec = json.loads(Path(cases_path).read_text())
    model_dir = Path(spec["model_dir"])
    config = load_config(model_dir)
    _, modeling = ARCHITECTURES[config.model_type]
    monkey_patch(modeling, verbose=False)  # upstream's AttnLRP rules, before loading
    model = AutoModelForCausalLM.from_pretrained(
        model_dir,
        config=config,
        dtype=torch.float32,
        attn_implementation="eager",
    ).eval()
    out = {"relevance": [], "explained": []}
    for case in spec["cases"]:
        rel, value = relevance(model, case["token_ids"], case["target_id"], case["contrast_id"])
        out["relevance"].append(rel)
        out["explained"].append(value)
    Path(out_path).write_text(json.dumps(out))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: upstream_lxt_relevance.py CASES.json OUT.json")
    main(sys.argv[1], sys.argv[2])
