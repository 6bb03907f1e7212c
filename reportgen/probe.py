"""A hypothesis tested live: ablate graph nodes and mask input tokens, and see what changes.

`reportgen explore` asks "if these nodes carried the failure, removing them should change the
answer": :func:`probe` runs the prompt clean and with the intervention, and returns f (the
case's objective), the top-k next tokens and the greedy continuation of both, side by side.

The intervention, in one forward:

* *ablated nodes* (layer as the graph names it -- ``"emb"``, ``"0"``, ... -- and position):
  h_l[i] is replaced by the mean of h_l over the input's positions in the **clean** forward
  (``mean``) or by zeros (``zero``), each at its own layer, every later block recomputed: the
  definition of :mod:`reportgen.interventions` (docs/method.md section 10), through its hooks;
* *masked input tokens*: the token's input embedding row is replaced and its position kept,
  as the flip test masks (``zero``: zeros, ``unk``: the unk/pad token's embedding --
  :mod:`reportgen.faithfulness.masking`); special tokens are never masked (as in the flip
  test: removing a chat marker breaks the template, not the question asked). The means of an
  ablation come from the clean forward, not the masked one.

What the continuation holds. The greedy continuation (at most ``tokens`` tokens, default 32:
one short sentence, about a second on CPU for a 135M model) is generated with the KV cache;
the intervention applies to the prompt's forward only, so every **prompt** position keeps its
edited state at every layer (and the keys/values derived from it), while the generated tokens
are neither masked nor ablated -- they see the edited prompt through attention. For a causal
model that is exactly a full recomputation of prompt + generated tokens with the same
replacements held at the prompt positions (a prompt position never sees a later token). A
model that cannot generate (a masked LM) has no continuation.

An empty intervention runs no hook at all: its numbers equal the clean run's bit for bit."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .continuations import CONTINUATION_TOKENS, can_generate, greedy_ids
from .faithfulness.masking import MASKS, fill_token, mask_row
from .interventions import BASELINES, hook_layers, layer_index
from .results import Node

#: next tokens shown before and after
TOP_K = 10
#: the most tokens a continuation may ask for (the explorer answers while one waits)
MAX_TOKENS = 64


@dataclass(frozen=True)
class Intervention:
    """Nodes to ablate (graph layer name, position) with their baseline, and input positions
    to mask with their fill (``zero`` or ``unk``)."""

    nodes: tuple[Node, ...] = ()
    baseline: str = "mean"
    masked: tuple[int, ...] = ()
    mask: str = "zero"

    @property
    def empty(self) -> bool:
        return not self.nodes and not self.masked


@dataclass(frozen=True)
class NextToken:
    id: int
    text: str
    logit: float
    prob: float


@dataclass(frozen=True)
class Run:
    """One forward and its continuation: f, the top-k next tokens, the greedy tokens (None
    when the model cannot generate)."""

    f: float
    top: tuple[NextToken, ...]
    continuation: tuple[int, ...] | None
    text: str | None


@dataclass(frozen=True)
class ProbeResult:
    intervention: Intervention
    clean: Run
    after: Run
    tokens: int  # the continuation's cap

    @property
    def f_clean(self) -> float:
        return self.clean.f

    @property
    def f_after(self) -> float:
        return self.after.f

    @property
    def flips(self) -> bool:
        """The model preferred the target (f > 0) and no longer does (f ≤ 0)."""
        return self.clean.f > 0 >= self.after.f


def check_intervention(
    intervention: Intervention, n_tokens: int, blocks: int, special: Sequence[bool]
) -> None:
    """ValueError with one line for what cannot be run: an unknown or mid-block layer, a
    position outside the input, a repeated node, a special token masked, a bad baseline."""
    if intervention.baseline not in BASELINES:
        raise ValueError(f"baseline: must be one of {', '.join(BASELINES)}")
    if intervention.mask not in MASKS:
        raise ValueError(f"mask: must be one of {', '.join(MASKS)}")
    seen: set[Node] = set()
    for layer, position in intervention.nodes:
        layer_index(layer, blocks)  # its own one-line error
        if not 0 <= position < n_tokens:
            raise ValueError(
                f"node {layer}:{position}: position outside the {n_tokens} input tokens "
                f"(0..{n_tokens - 1})"
            )
        if (layer, position) in seen:
            raise ValueError(f"node {layer}:{position} is given twice")
        seen.add((layer, position))
    for position in intervention.masked:
        if not 0 <= position < n_tokens:
            raise ValueError(
                f"mask: position {position} is outside the {n_tokens} input tokens "
                f"(0..{n_tokens - 1})"
            )
        if special[position]:
            raise ValueError(
                f"mask: position {position} is a special token; the flip test never masks those"
            )
    if len(set(intervention.masked)) != len(intervention.masked):
        raise ValueError("mask: a position is given twice")


def probe(
    model: Any,
    tokenizer: Any,
    token_ids: Sequence[int],
    objective: Any,
    intervention: Intervention,
    *,
    k: int = TOP_K,
    tokens: int = CONTINUATION_TOKENS,
    clean: Run | None = None,
) -> ProbeResult:
    """The clean run and the run with ``intervention`` (module docstring): f, top-``k`` and
    a greedy continuation of ``tokens`` tokens each. ``clean``: the clean run of the same
    input, objective, ``k`` and ``tokens``, computed before (the explorer keeps it, so a new
    hypothesis costs one continuation, not two); the clean forward still runs when a mean
    ablation needs its means."""
    import torch

    import lxt

    blocks = lxt.decoder_blocks(model)
    special_ids = set(getattr(tokenizer, "all_special_ids", []) or [])
    special = [i in special_ids for i in token_ids]
    check_intervention(intervention, len(token_ids), len(blocks), special)
    if not 0 <= tokens <= MAX_TOKENS:
        raise ValueError(f"tokens: a continuation is 0..{MAX_TOKENS} tokens")
    nodes = [(layer_index(layer, len(blocks)), position) for layer, position in intervention.nodes]
    used = sorted({layer for layer, _ in nodes})
    means: dict[int, Any] = {}

    def record(layer: int, hidden: Any) -> Any:
        zero = intervention.baseline == "zero"
        means[layer] = torch.zeros_like(hidden[0, 0]) if zero else hidden[0].mean(0)
        return hidden

    if clean is None or used:
        clean_logits = _forward(model, token_ids, lambda: hook_layers(blocks, used, record))
    if clean is None:
        clean = _run(model, tokenizer, token_ids, objective, clean_logits, k, tokens, lambda: [])
    if intervention.empty:
        return ProbeResult(intervention, clean, clean, tokens)

    by_layer: dict[int, list[int]] = {}
    for layer, position in nodes:
        by_layer.setdefault(layer, []).append(position)
    fill = None
    if intervention.masked:
        fill_id = fill_token(model, tokenizer, None) if intervention.mask == "unk" else None
        fill = mask_row(model, fill_id)
    held = {"prompt": True}  # the edits apply to the prompt's forward only

    def edit(layer: int, hidden: Any) -> Any:
        if not held["prompt"]:
            return hidden
        hidden = hidden.clone()
        hidden[0, by_layer[layer]] = means[layer].to(hidden.dtype)
        return hidden

    def mask(module: Any, args: Any, output: Any) -> Any:
        if not held["prompt"]:
            return output
        output = output.clone()
        output[0, list(intervention.masked)] = fill.to(output.dtype)
        return output

    def done(module: Any, args: Any, output: Any) -> None:
        held["prompt"] = False

    def hooks() -> list[Any]:
        held["prompt"] = True
        handles = hook_layers(blocks, list(by_layer), edit)
        if fill is not None:
            handles.append(model.get_input_embeddings().register_forward_hook(mask))
        handles.append(model.register_forward_hook(done))
        return handles

    after_logits = _forward(model, token_ids, hooks)
    after = _run(model, tokenizer, token_ids, objective, after_logits, k, tokens, hooks)
    return ProbeResult(intervention, clean, after, tokens)


def _forward(model: Any, token_ids: Sequence[int], hooks: Any) -> Any:
    """The last position's logits of one forward with the hooks ``hooks()`` registers."""
    import torch

    from .attribution import forward_kwargs

    ids = torch.tensor([list(token_ids)], device=next(model.parameters()).device)
    handles = hooks()
    try:
        with torch.no_grad():
            return model(input_ids=ids, **forward_kwargs(model)).logits[0, -1]
    finally:
        for handle in handles:
            handle.remove()


def _run(
    model: Any,
    tokenizer: Any,
    token_ids: Sequence[int],
    objective: Any,
    logits: Any,
    k: int,
    tokens: int,
    hooks: Any,
) -> Run:
    import torch

    wide = logits.double()
    probs = torch.softmax(wide, -1)
    top = torch.topk(wide, min(k, wide.shape[-1])).indices.tolist()
    continuation: tuple[int, ...] | None = None
    if can_generate(model):
        handles = hooks()
        try:
            continuation = tuple(greedy_ids(model, tokenizer, token_ids, tokens))
        finally:
            for handle in handles:
                handle.remove()
    return Run(
        f=float(objective.value(wide)),
        top=tuple(
            NextToken(int(i), tokenizer.decode([int(i)]), float(wide[i]), float(probs[i]))
            for i in top
        ),
        continuation=continuation,
        text=None if continuation is None else tokenizer.decode(list(continuation)),
    )
