"""The patch maps: which module of an architecture gets which AttnLRP rule (the table that
names them per ``model_type`` is ``lxt.architectures``).

A selector is either a module class name (``"LlamaRMSNorm"``) or a glob over the module's
qualified name (``"*.mlp.act_fn"``).  Every selector must match at least one module of the
model: a renamed module in a new transformers release then fails loudly instead of silently
degrading to plain gradient x input.
"""

from __future__ import annotations

from collections.abc import Mapping

from .rules import (
    FusedQKVGradient,
    IdentityRule,
    LayerNormRule,
    RMSNormRule,
    Rule,
    ScaleInputGradient,
    ScaleOutputGradient,
)

PatchMap = Mapping[str, Rule]

IDENTITY = IdentityRule()
RMS_NORM = RMSNormRule()
GEMMA_RMS_NORM = RMSNormRule(weight_offset=1.0)
LAYER_NORM = LayerNormRule()
QK_SHARE = ScaleOutputGradient(0.25)
V_SHARE = ScaleOutputGradient(0.5)
GATED_PRODUCT = ScaleInputGradient(0.5)
FUSED_QKV = FusedQKVGradient()


def _gated_decoder(norm_class: str, norm_rule: Rule = RMS_NORM, act: str = "act_fn") -> PatchMap:
    """Llama-shaped decoders: separate q/k/v projections, a gated MLP, RMSNorm-style norms.
    Per-head q/k norms (Qwen3, Gemma3, OLMo2) share the norm class and are covered by it."""
    return {
        norm_class: norm_rule,
        f"*.mlp.{act}": IDENTITY,
        "*.self_attn.q_proj": QK_SHARE,
        "*.self_attn.k_proj": QK_SHARE,
        "*.self_attn.v_proj": V_SHARE,
        "*.mlp.down_proj": GATED_PRODUCT,
    }


LLAMA_PATCHES = _gated_decoder("LlamaRMSNorm")
MISTRAL_PATCHES = _gated_decoder("MistralRMSNorm")
QWEN2_PATCHES = _gated_decoder("Qwen2RMSNorm")
QWEN3_PATCHES = _gated_decoder("Qwen3RMSNorm")
OLMO_PATCHES = _gated_decoder("OlmoLayerNorm", LAYER_NORM)
OLMO2_PATCHES = _gated_decoder("Olmo2RMSNorm")
OLMO3_PATCHES = _gated_decoder("Olmo3RMSNorm")
GEMMA3_PATCHES = _gated_decoder("Gemma3RMSNorm", GEMMA_RMS_NORM)

PHI3_PATCHES = {
    "Phi3RMSNorm": RMS_NORM,
    "*.mlp.activation_fn": IDENTITY,
    "*.self_attn.qkv_proj": FUSED_QKV,
    "*.mlp.down_proj": GATED_PRODUCT,
}

GPT2_PATCHES = {
    "LayerNorm": LAYER_NORM,
    "*.mlp.act": IDENTITY,
    "*.attn.c_attn": FUSED_QKV,
}

BERT_PATCHES = {
    "LayerNorm": LAYER_NORM,
    "*.intermediate.intermediate_act_fn": IDENTITY,
    "*.transform.transform_act_fn": IDENTITY,
    "*.attention.self.query": QK_SHARE,
    "*.attention.self.key": QK_SHARE,
    "*.attention.self.value": V_SHARE,
}
