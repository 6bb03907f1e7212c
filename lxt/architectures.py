"""Everything lxt and reportgen know about one architecture, in one table.

A transformers ``model_type`` maps to one :class:`Architecture`: its AttnLRP patch map and where
the graph code finds its parts (the block list, the mid-block residual state, the residual sum
after attention, the MLP neurons). Adding an architecture is one entry here plus its tests; a
model whose type has no entry fails loudly (``UnsupportedArchitectureError``) instead of falling
back to plain gradient x input.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from .patches import (
    BERT_PATCHES,
    GEMMA3_PATCHES,
    GPT2_PATCHES,
    LLAMA_PATCHES,
    MISTRAL_PATCHES,
    OLMO2_PATCHES,
    OLMO3_PATCHES,
    OLMO_PATCHES,
    PHI3_PATCHES,
    QWEN2_PATCHES,
    QWEN3_PATCHES,
    PatchMap,
)


@dataclass(frozen=True)
class Architecture:
    """The per-``model_type`` facts. Module paths are relative to one block.

    - ``patches``: selector -> rule (lxt's AttnLRP rules for this architecture).
    - ``blocks``: the attribute name of the block ``ModuleList`` (its length is the layer count).
    - ``mid_state``: the submodule whose input is the mid-block residual state (after attention).
    - ``residual_sum``: the submodule whose input is h_s + attention branch (the closed form's
      residual path); the same as ``mid_state`` except where the sum happens inside a norm.
    - ``neurons``: the MLP's output projection, whose input holds the MLP neurons."""

    patches: PatchMap
    blocks: str
    mid_state: str
    residual_sum: str
    neurons: str


def _llama_like(patches: PatchMap, mid_state: str = "post_attention_layernorm") -> Architecture:
    return Architecture(
        patches=patches,
        blocks="layers",
        mid_state=mid_state,
        residual_sum=mid_state,
        neurons="mlp.down_proj",
    )


_TABLE: dict[str, Architecture] = {
    "llama": _llama_like(LLAMA_PATCHES),
    "mistral": _llama_like(MISTRAL_PATCHES),
    "qwen2": _llama_like(QWEN2_PATCHES),
    "qwen3": _llama_like(QWEN3_PATCHES),
    "olmo": _llama_like(OLMO_PATCHES),
    "olmo2": _llama_like(OLMO2_PATCHES, mid_state="mlp"),
    "olmo3": _llama_like(OLMO3_PATCHES, mid_state="mlp"),
    "gemma3_text": _llama_like(GEMMA3_PATCHES, mid_state="pre_feedforward_layernorm"),
    "phi3": _llama_like(PHI3_PATCHES),
    "gpt2": Architecture(
        patches=GPT2_PATCHES,
        blocks="h",
        mid_state="ln_2",
        residual_sum="ln_2",
        neurons="mlp.c_proj",
    ),
    "bert": Architecture(
        patches=BERT_PATCHES,
        blocks="layer",
        mid_state="intermediate",
        # BERT adds the residual inside its post-attention norm
        residual_sum="attention.output.LayerNorm",
        neurons="output.dense",
    ),
}

#: model_type (from the transformers config) -> its facts. Read-only: add entries in ``_TABLE``.
ARCHITECTURES: Mapping[str, Architecture] = MappingProxyType(_TABLE)

#: model_type -> patch map (the ``patches`` column of ``ARCHITECTURES``)
PATCH_MAPS: Mapping[str, PatchMap] = MappingProxyType(
    {name: entry.patches for name, entry in _TABLE.items()}
)
