"""Input relevance of one prediction under AttnLRP (and the plain-gradient baselines)."""

from __future__ import annotations

import contextlib
import inspect
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

import lxt

from .inputs import PreparedInput, ResolvedToken
from .models import LoadedModel
from .objectives import Objective
from .results import Attribution, TokenScore


@dataclass(frozen=True)
class InputPass:
    """One forward + backward from the input embeddings to f under the AttnLRP rules: what the
    input relevance and the prediction's scores are read from. The graph's trace is such a
    pass too (``graph.trace``), so a case whose graph is computed needs no second one."""

    embeddings: torch.Tensor  # [1, n, d], detached
    gradient: torch.Tensor  # d f / d embeddings under the rules, [1, n, d]
    logits: torch.Tensor  # last position, [vocab]
    value: torch.Tensor  # f, a scalar


def forward_kwargs(model: Any) -> dict[str, Any]:
    """Keyword arguments for an explaining forward pass: no KV cache, and logits only at the
    explained (last) position where the model can skip the others."""
    params = inspect.signature(model.forward).parameters
    kwargs: dict[str, Any] = {}
    if "use_cache" in params:
        kwargs["use_cache"] = False
    if "logits_to_keep" in params:
        kwargs["logits_to_keep"] = 1  # only the explained position goes through the LM head
    return kwargs


def cache_argument(module: Any) -> str | None:
    """The forward's key/value-cache argument of a causal decoder, else None (encoders, toys):
    only a causal model's prefix states are independent of what comes after them."""
    config = getattr(module, "config", None)
    if config is None or getattr(config, "is_encoder_decoder", False):
        return None
    if not type(module).__name__.endswith(("ForCausalLM", "LMHeadModel")):
        return None
    params = inspect.signature(module.forward).parameters
    if "logits_to_keep" not in params:
        return None
    for name in ("cache", "past_key_values"):
        if name in params:
            return name
    return None


# From this many tokens on (at SmolLM2's shape or smaller), the explaining backward recomputes
# each block's forward instead of keeping every block's activations from the forward pass.
# Kept, they grow with tokens x layers x width: 17.9 GB at 10,168 tokens of Gemma 3 270M, which
# alone broke the 16 GB a 10k-token case may take; recomputed, 5.2 GB, for one more forward pass
# (143 -> 165 s measured, noisy). A wider or deeper model recomputes from the same activation
# size (``recompute_from``): Qwen2.5-Coder-1.5B kept 18.6 GB at 2,000 tokens. The graph's trace
# checkpoints its blocks from the same length.
RECOMPUTE_FROM_TOKENS = 4096
RECOMPUTE_REFERENCE_SHAPE = 30 * 576  # SmolLM2-135M: blocks x hidden width


def recompute_from(model: Any) -> int:
    """The input length from which ``model``'s blocks are recomputed in the backward: the
    activations SmolLM2 keeps at ``RECOMPUTE_FROM_TOKENS``, at this model's blocks x width
    (1,645 tokens for Qwen2.5-Coder-1.5B's 28 x 1536); never later than that for a smaller
    model."""
    config = getattr(model, "config", None)
    blocks = int(getattr(config, "num_hidden_layers", 0) or 0)
    hidden = int(getattr(config, "hidden_size", 0) or 0)
    shape = blocks * hidden
    if shape <= RECOMPUTE_REFERENCE_SHAPE:
        return RECOMPUTE_FROM_TOKENS
    return max(1, RECOMPUTE_FROM_TOKENS * RECOMPUTE_REFERENCE_SHAPE // shape)


@contextlib.contextmanager
def checkpointed_blocks(
    blocks: Sequence[Any],
    recompute: Callable[[Any, Callable[..., Any]], Callable[..., Any]] = lambda block, run: run,
) -> Iterator[None]:
    """Each of ``blocks`` checkpointed (non-reentrant) while the context lasts: its forward keeps
    only the block's input, and the backward runs the block again. ``recompute(block, forward)``
    is what the checkpoint runs (default the block's forward itself; the graph's trace silences
    its recording hooks on the second run), asked anew for every forward call. The original
    forwards come back afterwards."""
    from torch.utils.checkpoint import checkpoint

    own = [block.__dict__.get("forward") for block in blocks]  # a wrapper someone else set
    for block in blocks:

        def recomputed(
            *args: Any, _block: Any = block, _forward: Any = block.forward, **kwargs: Any
        ) -> Any:
            return checkpoint(recompute(_block, _forward), *args, use_reentrant=False, **kwargs)

        block.forward = recomputed
    try:
        yield
    finally:
        for block, forward in zip(blocks, own, strict=True):
            if forward is None:
                del block.forward  # the class's own forward again
            else:
                block.forward = forward


@contextlib.contextmanager
def recomputed_blocks(model: Any) -> Iterator[None]:
    """Checkpoint every transformer block for one backward: the forward keeps only each block's
    input, and the backward runs the block again (with the same rules, whose hooks fire again)
    to get what it needs. The gradient is the same as without; only memory and time change.
    A model without an architecture entry runs as is."""
    try:
        blocks = lxt.decoder_blocks(model)
    except lxt.UnsupportedArchitectureError:
        blocks = None
    if blocks is None:
        yield
        return
    with checkpointed_blocks(blocks):
        yield


def input_gradient(
    model: Any, token_ids: torch.Tensor, objective: Objective, *, lrp: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One forward + backward from the input embeddings to f.

    Returns (embeddings, gradient, last-position logits, f) for a batch of one sequence. With
    ``lrp`` the AttnLRP rules shape the backward; without, it is the plain gradient. Long inputs
    recompute each block in the backward (``recomputed_blocks``) instead of keeping it."""
    rules = lxt.lrp_rules(model) if lrp else contextlib.nullcontext()
    long_input = token_ids.shape[-1] >= recompute_from(model)
    recompute = recomputed_blocks(model) if long_input else contextlib.nullcontext()
    with rules, recompute, torch.enable_grad():
        embeddings = model.get_input_embeddings()(token_ids).detach().requires_grad_(True)
        logits = model(inputs_embeds=embeddings, **forward_kwargs(model)).logits[0, -1]
        value = objective.value(logits)
        (gradient,) = torch.autograd.grad(value, embeddings)
    return embeddings.detach(), gradient, logits.detach(), value.detach()


def _score(
    tokenizer: Any,
    logits: torch.Tensor,
    probs: torch.Tensor,
    token_id: int,
    asked: ResolvedToken | None = None,
) -> TokenScore:
    return TokenScore(
        text=tokenizer.decode([token_id]),
        token=tokenizer.convert_ids_to_tokens(token_id),
        id=int(token_id),
        logit=float(logits[token_id]),
        prob=float(probs[token_id]),
        first_subtoken_of=asked.first_subtoken_of if asked else None,
    )


def attribute(
    loaded: LoadedModel,
    prepared: PreparedInput,
    objective: Objective,
    *,
    target: ResolvedToken | None = None,
    contrast: ResolvedToken | None = None,
    top_k: int = 10,
) -> Attribution:
    """AttnLRP relevance of every input token for ``objective`` at the last position."""
    ids = torch.tensor([list(prepared.token_ids)], device=loaded.model.device)
    embeddings, gradient, logits, value = input_gradient(loaded.model, ids, objective, lrp=True)
    lrp_pass = InputPass(embeddings, gradient, logits, value)
    return attribution_from(
        loaded, prepared, objective, lrp_pass, target=target, contrast=contrast, top_k=top_k
    )


def attribution_from(
    loaded: LoadedModel,
    prepared: PreparedInput,
    objective: Objective,
    lrp_pass: InputPass,
    *,
    target: ResolvedToken | None = None,
    contrast: ResolvedToken | None = None,
    top_k: int = 10,
) -> Attribution:
    """The Attribution of one AttnLRP pass over ``prepared`` (``attribute``'s own, or the
    graph trace's): relevance = embeddings x gradient summed over the hidden dimension."""
    tokenizer = loaded.tokenizer
    logits, value = lrp_pass.logits, lrp_pass.value
    relevance = (lrp_pass.embeddings * lrp_pass.gradient).sum(-1)[0].float()
    logits32 = logits.float()
    probs = torch.softmax(logits32, -1)
    top = torch.topk(logits32, min(top_k, logits32.shape[-1]))
    special_ids = set(getattr(tokenizer, "all_special_ids", []) or [])
    notes = []
    for role, token in (("target", target), ("contrast", contrast)):
        if token is not None and token.first_subtoken_of is not None:
            notes.append(
                f"{role} {token.first_subtoken_of!r} spans several tokens; its first sub-token "
                f"{token.token!r} decides the preference and is what is explained"
            )
    if objective.mode == "logit_diff" and objective.strategy == "by_topk_avg":
        included = objective.target_id in top.indices[: objective.k].tolist()
        notes.append(
            f"the target is {'' if included else 'not '}among the top-{objective.k} logits it is compared with"
        )
    if not math.isfinite(float(value)):
        raise FloatingPointError("the explained value is not finite")
    use_contrast = objective.mode == "logit_diff" and objective.strategy == "by_ref_token"
    return Attribution(
        model=loaded.name,
        mode=objective.mode,
        strategy=objective.strategy,
        k=objective.k if objective.strategy == "by_topk_avg" else None,
        objective=objective.describe(),
        tokens=tokenizer.convert_ids_to_tokens(list(prepared.token_ids)),
        token_texts=[tokenizer.decode([i]) for i in prepared.token_ids],
        token_ids=list(prepared.token_ids),
        special=[i in special_ids for i in prepared.token_ids],
        relevance=relevance.tolist(),
        explained=float(value),
        target=_score(tokenizer, logits32, probs, objective.target_id, target),
        contrast=_score(tokenizer, logits32, probs, objective.contrast_id, contrast)
        if use_contrast and objective.contrast_id is not None
        else None,
        top_k=[_score(tokenizer, logits32, probs, int(i)) for i in top.indices],
        prompt_length=prepared.prompt_length,
        notes=notes,
    )
