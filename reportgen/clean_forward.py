"""The case's input read once, plainly: the forward every later stage starts from.

The ablations need the clean f, the mean hidden state of every node layer and the keys and
values of every position (a late node set runs only its suffix from them); the continuations
need the prompt's keys and values (both paths decode from there); the flip test needs f0 and
the same keys and values (a masked set runs from its first masked position). Each stage used to
read the prompt on its own: on a 2,000-token input of a 1.5B model that is 90 s a read, three
times. Computed once here, read by each (docs/method.md section 12).

A node layer is -1 for the first block's input ("emb") and b for block b's output; the hooks
that read or replace a node layer's hidden state (``hook_layers``) are here too, below the
interventions that also write through them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .attribution import cache_argument, forward_kwargs
from .kv_cache import KeysValues


@dataclass(frozen=True)
class CleanForward:
    """One forward of the input without rules or masks, under ``torch.no_grad``."""

    token_ids: tuple[int, ...]
    logits: torch.Tensor  # the last position's, [vocab], as the model computed them
    #: per layer (keys, values) of every position, from a cache that drops none (a
    #: sliding-window layer's early keys too: the model's mask still leaves them out); None
    #: for a model without a key/value cache argument (an encoder, a toy)
    states: KeysValues | None
    #: node layer -> the mean over positions of its hidden state, [hidden]
    means: dict[int, torch.Tensor]

    def check(self, token_ids: Sequence[int]) -> None:
        """A stage handed the forward of another input would compute wrong numbers quietly."""
        if tuple(int(t) for t in token_ids) != self.token_ids:
            raise ValueError("the clean forward was computed for another input")


def _hidden(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return args[0] if args else kwargs["hidden_states"]


def _with_hidden(args: tuple[Any, ...], kwargs: dict[str, Any], hidden: Any) -> Any:
    if args:
        return (hidden, *args[1:]), kwargs
    return args, {**kwargs, "hidden_states": hidden}


def _first(output: Any) -> Any:
    return output[0] if isinstance(output, tuple) else output


def _with_first(output: Any, hidden: Any) -> Any:
    return (hidden, *output[1:]) if isinstance(output, tuple) else hidden


def hook_layers(blocks: Any, layers: Sequence[int], edit: Callable[[int, Any], Any]) -> list[Any]:
    """Hooks calling ``edit(layer, hidden) -> hidden`` at each node layer of ``layers``: the
    first block's input for -1, block b's output for b. Remove the returned handles."""
    handles = []
    for layer in sorted(set(layers)):
        if layer < 0:

            def pre(module: Any, args: Any, kwargs: Any) -> Any:
                return _with_hidden(args, kwargs, edit(-1, _hidden(args, kwargs)))

            handles.append(blocks[0].register_forward_pre_hook(pre, with_kwargs=True))
        else:

            def post(module: Any, args: Any, output: Any, layer: int = layer) -> Any:
                return _with_first(output, edit(layer, _first(output)))

            handles.append(blocks[layer].register_forward_hook(post))
    return handles


def clean_forward(model: Any, token_ids: Sequence[int]) -> CleanForward:
    """The input's plain forward: last logits, every layer's keys and values (a cache without
    a sliding window, so none is dropped) and every node layer's mean hidden state."""
    import lxt

    device = next(model.parameters()).device
    ids = torch.tensor([list(token_ids)], device=device)
    try:
        blocks = lxt.decoder_blocks(model)
    except lxt.UnsupportedArchitectureError:
        blocks = None
    means: dict[int, torch.Tensor] = {}

    def record(layer: int, hidden: Any) -> Any:
        means[layer] = hidden[0].mean(0)
        return hidden

    handles = hook_layers(blocks, range(-1, len(blocks)), record) if blocks is not None else []
    name = cache_argument(model)
    try:
        with torch.no_grad():
            if name is None:
                logits, states = model(input_ids=ids, **forward_kwargs(model)).logits, None
            else:
                from transformers import DynamicCache

                cache = DynamicCache()  # no config: plain layers that keep every position
                kwargs = {**forward_kwargs(model), "use_cache": True, name: cache}
                logits = model(input_ids=ids, **kwargs).logits
                states = tuple((layer.keys, layer.values) for layer in cache.layers)
    finally:
        for handle in handles:
            handle.remove()
    return CleanForward(
        token_ids=tuple(int(t) for t in token_ids),
        logits=logits[0, -1],
        states=states,
        means=means,
    )
