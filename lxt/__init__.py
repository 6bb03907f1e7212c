"""lxt -- reportgen's own AttnLRP runtime for Hugging Face transformers (efficient Input x Gradient form).

Usage::

    with lxt.lrp_rules(model):
        embeddings = model.get_input_embeddings()(ids).detach().requires_grad_()
        f = objective(model(inputs_embeds=embeddings).logits)
        f.backward()
        relevance = (embeddings * embeddings.grad).sum(-1)
"""

from .architectures import ARCHITECTURES, PATCH_MAPS, Architecture
from .core import (
    Patch,
    PatchMismatchError,
    UnsupportedArchitectureError,
    architecture_of,
    decoder_blocks,
    is_patched,
    lrp_rules,
    patch,
    patch_map_for,
    unpatch,
)
from .rules import (
    FusedQKVGradient,
    IdentityRule,
    LayerNormRule,
    RMSNormRule,
    ScaleInputGradient,
    ScaleOutputGradient,
    identity_rule,
    scale_gradient,
)

__all__ = [
    "ARCHITECTURES",
    "PATCH_MAPS",
    "Architecture",
    "decoder_blocks",
    "FusedQKVGradient",
    "IdentityRule",
    "LayerNormRule",
    "Patch",
    "PatchMismatchError",
    "RMSNormRule",
    "ScaleInputGradient",
    "ScaleOutputGradient",
    "UnsupportedArchitectureError",
    "architecture_of",
    "identity_rule",
    "is_patched",
    "lrp_rules",
    "patch",
    "patch_map_for",
    "scale_gradient",
    "unpatch",
]
