"""The one modified backward pass the graph is read from, and replaying its blocks.

``trace`` runs f's AttnLRP backward once and keeps every node state h_s, its gradient g_s and
how each block was called; the edge methods (``packed``, ``closed``) replay blocks from there.
Nodes and edges: docs/method.md section 3."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

import lxt

from ..attribution import InputPass, forward_kwargs
from ..objectives import Objective


def check_blocks(blocks: Sequence[int] | None, total: int) -> list[int]:
    """The chosen block indices, sorted and unique (all when None); out of range is an error."""
    chosen = list(range(total)) if blocks is None else sorted(set(int(b) for b in blocks))
    if chosen and (chosen[0] < 0 or chosen[-1] >= total):
        raise ValueError(f"expected block indices in 0..{total - 1}, got {list(blocks or [])}")
    return chosen


def token_strings(tokenizer: Any, token_ids: Sequence[int]) -> tuple[str, ...]:
    """The graph's node labels: the tokenizer's own token strings."""
    return tuple(tokenizer.convert_ids_to_tokens(list(token_ids)))


def mid_module(block: nn.Module, architecture: lxt.Architecture) -> nn.Module:
    """The submodule of ``block`` whose input is the mid-block residual state."""
    return block.get_submodule(architecture.mid_state)


@dataclass
class BlockCall:
    """How one block was called in the trace (everything but the hidden state), to replay it."""

    args: tuple[Any, ...]
    kwargs: dict[str, Any]


@dataclass
class Trace:
    """One modified forward/backward pass: states, their gradients, and the block calls."""

    states: list[torch.Tensor]  # node states in layer order (detached)
    grads: list[torch.Tensor]
    names: list[str]
    calls: list[BlockCall]  # how each block was called (to replay it)
    explained: float
    neuron_relevance: list[torch.Tensor] = field(default_factory=list)  # per block [n, mlp width]
    #: the pass seen from the input (embeddings, their gradient, logits, f): the case's input
    #: relevance, so a case whose graph is traced needs no separate attribution pass
    lrp_pass: InputPass | None = None


def first_output(output: Any) -> torch.Tensor:
    """A block's hidden-state output (blocks return a tuple or the tensor itself)."""
    return output[0] if isinstance(output, tuple) else output


def trace(model: nn.Module, token_ids: torch.Tensor, objective: Objective, *, split: bool) -> Trace:
    """Run f's modified backward once, keeping every node state and its gradient."""
    blocks = lxt.decoder_blocks(model)
    architecture = lxt.architecture_of(model)
    calls: list[BlockCall] = []
    block_inputs: list[torch.Tensor] = []
    outputs: list[torch.Tensor] = []
    mids: list[torch.Tensor] = []
    handles = []

    def pre_hook(module, args, kwargs):
        calls.append(BlockCall(args[1:], dict(kwargs)))
        hidden = args[0] if args else kwargs["hidden_states"]
        hidden.retain_grad()
        block_inputs.append(hidden)

    def out_hook(module, args, kwargs, output):
        hidden = first_output(output)
        hidden.retain_grad()
        outputs.append(hidden)

    def mid_hook(module, args):
        args[0].retain_grad()
        mids.append(args[0])

    # per block, the MLP neurons' relevance x * g, [n, mlp width]: computed when the gradient
    # arrives and the activation dropped then, so the activations and their gradients are
    # never all held at once (4 GB of them at 2,000 tokens of Qwen2.5-Coder-1.5B)
    neuron_relevance: list[torch.Tensor | None] = []

    def neuron_hook(module, args):
        if not args[0].requires_grad:
            return
        index = len(neuron_relevance)
        neuron_relevance.append(None)
        held: list[torch.Tensor | None] = [args[0].detach()]

        def reduce(grad: torch.Tensor) -> None:
            if held[0] is None:  # the MLP's down projection is its one reader
                raise RuntimeError("an MLP activation received a second gradient")
            neuron_relevance[index] = (held[0] * grad)[0]
            held[0] = None

        args[0].register_hook(reduce)

    for block in blocks:
        handles.append(block.register_forward_pre_hook(pre_hook, with_kwargs=True))
        handles.append(block.register_forward_hook(out_hook, with_kwargs=True))
        if split:
            handles.append(mid_module(block, architecture).register_forward_pre_hook(mid_hook))
        handles.append(
            block.get_submodule(architecture.neurons).register_forward_pre_hook(neuron_hook)
        )
    try:
        with lxt.lrp_rules(model), torch.enable_grad():
            embeddings = model.get_input_embeddings()(token_ids).detach().requires_grad_(True)
            logits = model(inputs_embeds=embeddings, **forward_kwargs(model)).logits[0, -1]
            value = objective.value(logits)
            value.backward()
    finally:
        for handle in handles:
            handle.remove()
    states, names = [block_inputs[0]], ["emb"]
    for index, output in enumerate(outputs):
        if split:
            states.append(mids[index])
            names.append(f"{index}.mid")
        states.append(output)
        names.append(str(index))
    grads = [s.grad if s.grad is not None else torch.zeros_like(s) for s in states]
    return Trace(
        states=[s.detach() for s in states],
        grads=[g.detach() for g in grads],
        names=names,
        calls=calls,
        explained=float(value.detach()),
        neuron_relevance=[r for r in neuron_relevance if r is not None],
        lrp_pass=InputPass(embeddings.detach(), embeddings.grad, logits.detach(), value.detach())
        if embeddings.grad is not None
        else None,
    )


def node_relevance(traced: Trace) -> np.ndarray:
    """R = h * g summed over the hidden dimension, per node layer and position (float64)."""
    return np.stack(
        [
            (s * g).sum(-1)[0].double().cpu().numpy()
            for s, g in zip(traced.states, traced.grads, strict=True)
        ]
    )


# --- batch-packed edges --------------------------------------------------------------------------


def replay(block: nn.Module, call: BlockCall, hidden: torch.Tensor) -> torch.Tensor:
    """Run ``block`` on ``hidden`` with the other arguments it got in the trace."""
    return first_output(block(hidden, *call.args, **call.kwargs))


def chain(
    blocks: nn.ModuleList, calls: list[BlockCall], span: range
) -> Callable[[torch.Tensor], torch.Tensor]:
    """Replay the blocks in ``span`` one after another, each with the arguments it got in the trace."""

    def run(hidden: torch.Tensor) -> torch.Tensor:
        for index in span:
            hidden = replay(blocks[index], calls[index], hidden)
        return hidden

    return run
