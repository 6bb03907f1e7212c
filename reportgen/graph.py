"""Cross-layer attribution graphs: edges between hidden states (SPEC.md section 3).

Nodes are hidden states h_s[i] (layer s, position i): the input of the first block ("emb"),
optionally the mid-block state after attention ("<l>.mid"), and every block's output ("<l>").
The edge (s, i) -> (t, j) is the relevance reaching h_s[i] when only node (t, j)'s gradient
g_t[j] is propagated back through the blocks between s and t.

``packed`` computes rows of the edge matrix by batch-packed multi-target backpropagation: the
source state is repeated B times along the batch, row b is seeded at target position j_b, so n
targets cost ceil(n/B) backward passes of the block instead of n."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

import lxt

from .attribution import _forward_kwargs
from .objectives import Objective

#: model_type -> (submodule of a block, "input"): the tensor that is the mid-block residual state
MID_STATE: dict[str, str] = {
    "llama": "post_attention_layernorm",
    "mistral": "post_attention_layernorm",
    "qwen2": "post_attention_layernorm",
    "qwen3": "post_attention_layernorm",
    "olmo": "post_attention_layernorm",
    "phi3": "post_attention_layernorm",
    "gemma3_text": "pre_feedforward_layernorm",
    "olmo2": "mlp",
    "olmo3": "mlp",
    "gpt2": "ln_2",
    "bert": "intermediate",
}


#: model_type -> the MLP's output projection: its input holds the MLP neurons
NEURON_MODULE: dict[str, str] = {
    **{
        t: "mlp.down_proj"
        for t in (
            "llama",
            "mistral",
            "qwen2",
            "qwen3",
            "olmo",
            "olmo2",
            "olmo3",
            "phi3",
            "gemma3_text",
        )
    },
    "gpt2": "mlp.c_proj",
    "bert": "output.dense",
}


@dataclass(frozen=True)
class AttributionGraph:
    """A frozen graph: node relevance per node layer and a flat, sparse edge list.

    Edge k goes from (layers[edge_source_layer[k]], edge_source[k]) to
    (layers[edge_target_layer[k]], edge_target[k]) with weight edge_weight[k]."""

    tokens: tuple[str, ...]
    layers: tuple[str, ...]
    node_relevance: np.ndarray  # [len(layers), n_tokens]
    edge_source_layer: np.ndarray  # int16 indices into layers
    edge_target_layer: np.ndarray
    edge_source: np.ndarray  # int32 token positions
    edge_target: np.ndarray
    edge_weight: np.ndarray  # float32
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n_tokens(self) -> int:
        return len(self.tokens)

    @property
    def n_edges(self) -> int:
        return int(self.edge_weight.shape[0])

    def with_edges(self, keep: np.ndarray, **meta: Any) -> AttributionGraph:
        """A new graph holding only the edges where ``keep`` is true."""
        return replace(
            self,
            edge_source_layer=self.edge_source_layer[keep],
            edge_target_layer=self.edge_target_layer[keep],
            edge_source=self.edge_source[keep],
            edge_target=self.edge_target[keep],
            edge_weight=self.edge_weight[keep],
            meta={**self.meta, **meta},
        )

    def transitions(self) -> list[tuple[int, int]]:
        """(source layer index, target layer index) of each consecutive node-layer pair."""
        return [(i, i + 1) for i in range(len(self.layers) - 1)]

    def dense(self, source_layer: int) -> np.ndarray:
        """Edge matrix A[j, i] of the transition starting at ``source_layer`` (for tests/small n)."""
        matrix = np.zeros((self.n_tokens, self.n_tokens), dtype=np.float64)
        mask = self.edge_source_layer == source_layer
        np.add.at(matrix, (self.edge_target[mask], self.edge_source[mask]), self.edge_weight[mask])
        return matrix

    def to_json(self) -> dict[str, Any]:
        return {
            "tokens": list(self.tokens),
            "layers": list(self.layers),
            "node_relevance": [[float(v) for v in row] for row in self.node_relevance],
            "edges": [
                {
                    "source_layer": self.layers[int(sl)],
                    "target_layer": self.layers[int(tl)],
                    "source": int(s),
                    "target": int(t),
                    "weight": float(w),
                }
                for sl, tl, s, t, w in zip(
                    self.edge_source_layer,
                    self.edge_target_layer,
                    self.edge_source,
                    self.edge_target,
                    self.edge_weight,
                    strict=True,
                )
            ],
            "meta": dict(self.meta),
        }

    def to_npz(self) -> dict[str, np.ndarray]:
        return {
            "tokens": np.array(self.tokens, dtype=str),
            "layers": np.array(self.layers, dtype=str),
            "node_relevance": self.node_relevance,
            "edge_source_layer": self.edge_source_layer,
            "edge_target_layer": self.edge_target_layer,
            "edge_source": self.edge_source,
            "edge_target": self.edge_target,
            "edge_weight": self.edge_weight,
        }


@dataclass(frozen=True)
class HeadEdges:
    """Attention edges of chosen blocks, one matrix per head.

    ``heads[b, h, j, i]`` is the relevance head h of block ``blocks[b]`` carries from source
    position i (the block's input) to target position j (its output): value, key and query
    paths of that head. ``residual[b, j]`` is the residual path (source = target). The heads
    summed plus the residual diagonal are the block's edges in the ``AttributionGraph``, so every
    column sums to the source relevance ``source_relevance[b, i]``."""

    tokens: tuple[str, ...]
    blocks: tuple[int, ...]
    heads: np.ndarray  # [len(blocks), heads, n target, n source]
    residual: np.ndarray  # [len(blocks), n]
    source_relevance: np.ndarray  # [len(blocks), n]
    meta: dict[str, Any] = field(default_factory=dict)

    def block_edges(self, position: int) -> np.ndarray:
        """The edge matrix A[j, i] of ``blocks[position]`` (heads summed, residual added)."""
        return self.heads[position].sum(0) + np.diag(self.residual[position])

    def head_mass(self) -> np.ndarray:
        """[len(blocks), heads]: the total |edge| each head carries, to rank heads."""
        return np.abs(self.heads).sum((2, 3))

    def to_npz(self) -> dict[str, np.ndarray]:
        return {
            "tokens": np.array(self.tokens, dtype=str),
            "blocks": np.array(self.blocks, dtype=np.int32),
            "heads": self.heads,
            "residual": self.residual,
            "source_relevance": self.source_relevance,
            "method": np.array(self.meta.get("method", "")),
        }


def check_blocks(blocks: Sequence[int] | None, total: int) -> list[int]:
    """The chosen block indices, sorted and unique (all when None); out of range is an error."""
    chosen = list(range(total)) if blocks is None else sorted(set(int(b) for b in blocks))
    if chosen and (chosen[0] < 0 or chosen[-1] >= total):
        raise ValueError(f"expected block indices in 0..{total - 1}, got {list(blocks or [])}")
    return chosen


# --- tracing the model --------------------------------------------------------------------------


def decoder_blocks(model: nn.Module) -> nn.ModuleList:
    """The list of transformer blocks: the ModuleList whose length is the number of layers."""
    count = model.config.num_hidden_layers
    for _, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) == count:
            return module
    raise lxt.UnsupportedArchitectureError(
        f"cannot find the {count} transformer blocks of {type(model).__name__}"
    )


def _mid_module(block: nn.Module, model_type: str) -> nn.Module:
    if model_type not in MID_STATE:
        raise lxt.UnsupportedArchitectureError(f"no mid-block split known for {model_type!r}")
    return block.get_submodule(MID_STATE[model_type])


@dataclass
class _Call:
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


@dataclass
class Trace:
    """One modified forward/backward pass: states, their gradients, and the block calls."""

    states: list[torch.Tensor]  # node states in layer order (detached)
    grads: list[torch.Tensor]
    names: list[str]
    calls: list[_Call]  # how each block was called (to replay it)
    explained: float
    neuron_relevance: list[torch.Tensor] = field(default_factory=list)  # per block [n, mlp width]


def _first(output: Any) -> torch.Tensor:
    return output[0] if isinstance(output, tuple) else output


def trace(model: nn.Module, token_ids: torch.Tensor, objective: Objective, *, split: bool) -> Trace:
    """Run f's modified backward once, keeping every node state and its gradient."""
    blocks = decoder_blocks(model)
    model_type = lxt.core.model_type_of(model)
    calls: list[_Call] = []
    block_inputs: list[torch.Tensor] = []
    outputs: list[torch.Tensor] = []
    mids: list[torch.Tensor] = []
    handles = []

    def pre_hook(module, args, kwargs):
        calls.append(_Call(args[1:], dict(kwargs)))
        hidden = args[0] if args else kwargs["hidden_states"]
        hidden.retain_grad()
        block_inputs.append(hidden)

    def out_hook(module, args, kwargs, output):
        hidden = _first(output)
        hidden.retain_grad()
        outputs.append(hidden)

    def mid_hook(module, args):
        args[0].retain_grad()
        mids.append(args[0])

    neurons: list[torch.Tensor] = []

    def neuron_hook(module, args):
        args[0].retain_grad()
        neurons.append(args[0])

    for block in blocks:
        handles.append(block.register_forward_pre_hook(pre_hook, with_kwargs=True))
        handles.append(block.register_forward_hook(out_hook, with_kwargs=True))
        if split:
            handles.append(_mid_module(block, model_type).register_forward_pre_hook(mid_hook))
        if model_type in NEURON_MODULE:
            handles.append(
                block.get_submodule(NEURON_MODULE[model_type]).register_forward_pre_hook(
                    neuron_hook
                )
            )
    try:
        with lxt.lrp_rules(model), torch.enable_grad():
            embeddings = model.get_input_embeddings()(token_ids).detach().requires_grad_(True)
            logits = model(inputs_embeds=embeddings, **_forward_kwargs(model)).logits[0, -1]
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
        neuron_relevance=[(x.detach() * x.grad)[0] for x in neurons if x.grad is not None],
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


def packing_size(
    n_tokens: int,
    hidden: int,
    intermediate: int,
    heads: int,
    budget_bytes: float,
    bytes_per_value: int = 4,
) -> int:
    """How many target rows fit one block's forward+backward in ``budget_bytes``.

    The estimate is per packed sequence: ~14 hidden-sized and ~4 MLP-sized activations per token
    kept for the backward pass, plus the attention matrix (heads x n x n) a few times over. It
    grows with the sequence length, so long prompts get smaller batches."""
    per_token = 14 * hidden + 4 * intermediate + 3 * heads * n_tokens
    per_sequence = per_token * n_tokens * bytes_per_value
    return max(1, int(budget_bytes // max(per_sequence, 1)))


def _model_packing_size(model: nn.Module, traced: Trace, memory_budget_gb: float) -> int:
    """``packing_size`` for ``model``'s block sizes and the traced sequence."""
    config = model.config
    state = traced.states[0]
    hidden = state.shape[-1]
    return packing_size(
        state.shape[1],
        hidden,
        getattr(config, "intermediate_size", None) or 4 * hidden,
        config.num_attention_heads,
        memory_budget_gb * 2**30,
        state.element_size(),
    )


@dataclass
class _EdgeBuffer:
    """Edges as they stream in, kept sparse (threshold and/or top-k per target row)."""

    min_weight: float
    top_per_target: int | None
    parts: list[tuple[np.ndarray, ...]] = field(default_factory=list)
    #: a buffer that inspects every full row (tests do) gets them through ``add`` row by row;
    #: otherwise the closed form selects edges on the torch side and skips the dense rows
    wants_rows: ClassVar[bool] = False

    def add(
        self, source_layer: int, target_layer: int, targets: np.ndarray, rows: np.ndarray
    ) -> None:
        for target, row in zip(targets, rows, strict=True):
            keep = (
                np.nonzero(np.abs(row) > self.min_weight)[0]
                if self.min_weight > 0
                else np.nonzero(row)[0]
            )
            if self.top_per_target is not None and keep.size > self.top_per_target:
                keep = keep[np.argsort(-np.abs(row[keep]), kind="stable")[: self.top_per_target]]
                keep.sort()
            count = keep.size
            self.parts.append(
                (
                    np.full(count, source_layer, np.int16),
                    np.full(count, target_layer, np.int16),
                    keep.astype(np.int32),
                    np.full(count, target, np.int32),
                    row[keep].astype(np.float32),
                )
            )

    def arrays(self) -> tuple[np.ndarray, ...]:
        if not self.parts:
            return (
                np.zeros(0, np.int16),
                np.zeros(0, np.int16),
                np.zeros(0, np.int32),
                np.zeros(0, np.int32),
                np.zeros(0, np.float32),
            )
        return tuple(np.concatenate(column) for column in zip(*self.parts, strict=True))


def _replay(block: nn.Module, call: _Call, hidden: torch.Tensor) -> torch.Tensor:
    return _first(block(hidden, *call.args, **call.kwargs))


def _chain(
    blocks: nn.ModuleList, calls: list[_Call], span: range
) -> Callable[[torch.Tensor], torch.Tensor]:
    """Replay the blocks in ``span`` one after another, each with the arguments it got in the trace."""

    def run(hidden: torch.Tensor) -> torch.Tensor:
        for index in span:
            hidden = _replay(blocks[index], calls[index], hidden)
        return hidden

    return run


def _packed_rows(
    run: Callable[[torch.Tensor], torch.Tensor],
    source: torch.Tensor,
    seed: torch.Tensor,
    targets: Sequence[int],
    capture: Callable[[nn.Module, Callable[[], torch.Tensor]], torch.Tensor] | None = None,
    last_block: nn.Module | None = None,
) -> np.ndarray:
    """Rows A[j, :] for the target positions ``targets`` in one backward pass.

    With ``capture`` the seed is placed at the mid-block state of ``last_block`` instead of at
    the output of ``run``."""
    batch = len(targets)
    x = source.expand(batch, *source.shape[1:]).clone().requires_grad_(True)
    out = capture(last_block, lambda: run(x)) if capture else run(x)
    seeds = torch.zeros_like(out)
    index = torch.tensor(list(targets), device=out.device)
    seeds[torch.arange(batch, device=out.device), index] = seed[0, index]
    (grad,) = torch.autograd.grad(out, x, seeds)
    return (x.detach() * grad).sum(-1).double().cpu().numpy()


def _capture_mid(
    model_type: str,
) -> Callable[[nn.Module, Callable[[], torch.Tensor]], torch.Tensor]:
    def run(block: nn.Module, forward: Callable[[], torch.Tensor]) -> torch.Tensor:
        box: list[torch.Tensor] = []
        handle = _mid_module(block, model_type).register_forward_pre_hook(
            lambda m, a: box.append(a[0])
        )
        try:
            forward()
        finally:
            handle.remove()
        return box[0]

    return run


def build_graph(
    model: nn.Module,
    tokenizer: Any,
    token_ids: Sequence[int],
    objective: Objective,
    *,
    split: bool = False,
    node_threshold: float = 0.0,
    min_edge_weight: float = 0.0,
    top_per_target: int | None = None,
    batch_size: int | None = None,
    memory_budget_gb: float = 2.0,
    progress: Callable[[int, int], None] = lambda done, total: None,
    traced: Trace | None = None,
    layers: Sequence[int] | None = None,
) -> AttributionGraph:
    """The attribution graph by batch-packed multi-target backpropagation.

    ``node_threshold`` skips target nodes with |R| below it (fewer passes, but column sums are
    then only approximate -- the graph's meta says so). ``batch_size`` overrides the packing
    size derived from ``memory_budget_gb`` and the sequence length."""
    device = next(model.parameters()).device
    ids = torch.tensor([list(token_ids)], device=device)
    if traced is None:
        traced = trace(model, ids, objective, split=split)
    blocks = decoder_blocks(model)
    model_type = lxt.core.model_type_of(model)
    n = ids.shape[1]
    if batch_size is None:
        batch_size = _model_packing_size(model, traced, memory_budget_gb)
    relevance = node_relevance(traced)
    buffer = _EdgeBuffer(min_edge_weight, top_per_target)
    passes = skipped = 0
    step = 2 if split else 1
    total = len(blocks)
    # node layers kept: the embeddings plus the outputs of the chosen blocks (all by default)
    chosen = check_blocks(layers, total)
    if split and len(chosen) != total:
        raise ValueError("a layer subset cannot be combined with the mid-block split")
    kept_states = [0]
    with lxt.lrp_rules(model), torch.enable_grad():
        previous = -1
        for last in chosen:
            span = range(previous + 1, last + 1)  # the blocks between two kept node layers
            source_index = (previous + 1) * step
            target_index = source_index + 1 if split else last + 1
            source = traced.states[source_index]
            seed = traced.grads[target_index]
            active = [
                j
                for j in range(n)
                if abs(relevance[target_index, j]) > node_threshold and bool(seed[0, j].any())
            ]
            skipped += sum(1 for j in range(n) if seed[0, j].any()) - len(active)
            capture = _capture_mid(model_type) if split else None
            run = _chain(blocks, traced.calls, span)
            for start in range(0, len(active), batch_size):
                chunk = active[start : start + batch_size]
                rows = _packed_rows(run, source, seed, chunk, capture, blocks[last])
                buffer.add(len(kept_states) - 1, len(kept_states), np.array(chunk), rows)
                passes += 1
            kept_states.append(target_index)
            if split:  # the MLP half is position-wise: mid -> output edges are the diagonal R_mid
                mid = target_index
                diagonal = np.diag(relevance[mid])
                positions = np.nonzero(relevance[mid] != 0)[0]
                buffer.add(len(kept_states) - 1, len(kept_states), positions, diagonal[positions])
                kept_states.append(mid + 1)
            previous = last
            progress(last + 1, total)
    relevance = relevance[kept_states]
    names = [traced.names[i] for i in kept_states]
    columns = buffer.arrays()
    exact = node_threshold == 0.0 and min_edge_weight == 0.0 and top_per_target is None
    meta = {
        "method": "packed",
        "split": split,
        "batch_size": batch_size,
        "backward_passes": passes,
        "skipped_targets": skipped,
        "node_threshold": node_threshold,
        "min_edge_weight": min_edge_weight,
        "top_per_target": top_per_target,
        "explained": traced.explained,
        "exact": exact,
        "note": "column sums equal the source relevance exactly"
        if node_threshold == 0.0
        else f"targets with |R| <= {node_threshold} were skipped: column sums are approximate",
    }
    return AttributionGraph(
        tokens=tuple(tokenizer.convert_ids_to_tokens(list(token_ids))),
        layers=tuple(names),
        node_relevance=relevance,
        edge_source_layer=columns[0],
        edge_target_layer=columns[1],
        edge_source=columns[2],
        edge_target=columns[3],
        edge_weight=columns[4],
        meta=meta,
    )


def per_target_reference(
    model: nn.Module,
    tokenizer: Any,
    token_ids: Sequence[int],
    objective: Objective,
    *,
    split: bool = False,
) -> AttributionGraph:
    """One target per backward pass: the slow reference the packed result is tested against."""
    return build_graph(model, tokenizer, token_ids, objective, split=split, batch_size=1)


def refine_neurons(
    traced: Trace, graph: AttributionGraph, *, top_nodes: int = 8, top_units: int = 10
) -> list[dict[str, Any]]:
    """Coarse to fine: for the strongest nodes still in ``graph`` (after pruning), the hidden
    dimensions (h * g per dimension) and, for block outputs, the MLP neurons of that block at that
    position that carry the most relevance."""
    from .prune import active_nodes

    active = active_nodes(graph)
    magnitude = np.where(active, np.abs(graph.node_relevance), -1.0)
    order = np.argsort(-magnitude, axis=None, kind="stable")[:top_nodes]
    details = []
    for flat in order:
        layer, position = divmod(int(flat), graph.n_tokens)
        if magnitude[layer, position] < 0:
            break
        state = traced.names.index(graph.layers[layer])  # a layer-subset graph skips states
        per_dim = (
            (traced.states[state][0, position] * traced.grads[state][0, position])
            .double()
            .cpu()
            .numpy()
        )
        entry: dict[str, Any] = {
            "layer": graph.layers[layer],
            "position": position,
            "token": graph.tokens[position],
            "relevance": float(graph.node_relevance[layer, position]),
            "dimensions": _top_units(per_dim, top_units),
        }
        name = graph.layers[layer]
        if name not in ("emb",) and not name.endswith(".mid") and traced.neuron_relevance:
            block = int(name)
            neurons = traced.neuron_relevance[block][position].double().cpu().numpy()
            entry["mlp_neurons"] = _top_units(neurons, top_units)
            entry["mlp_relevance"] = float(neurons.sum())
        details.append(entry)
    return details


def _top_units(values: np.ndarray, count: int) -> list[dict[str, float | int]]:
    order = np.argsort(-np.abs(values), kind="stable")[:count]
    return [{"index": int(i), "relevance": float(values[i])} for i in order]


# --- the per-head reference ----------------------------------------------------------------------

#: attention implementation that masks the head-output gradient of the replayed block
HEAD_MASK_IMPLEMENTATION = "reportgen_head_mask"
_HEAD_MASK: list[torch.Tensor] = []  # [batch, heads] while a block is replayed


def _head_masked_attention(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    **kwargs: Any,
) -> tuple[torch.Tensor, Any]:
    """transformers' sdpa, with the gradient at the head outputs [batch, n, heads, d] multiplied
    by the current head mask (the forward is untouched, so every rule sees the same inputs)."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    output, weights = sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    if _HEAD_MASK and output.requires_grad:
        mask = _HEAD_MASK[-1].to(output.dtype)[:, None, :, None]
        output.register_hook(lambda grad: grad * mask)
    return output, weights


def packed_head_edges(
    model: nn.Module,
    tokenizer: Any,
    token_ids: Sequence[int],
    objective: Objective,
    *,
    blocks: Sequence[int] | None = None,
    batch_size: int | None = None,
    memory_budget_gb: float = 2.0,
    traced: Trace | None = None,
) -> HeadEdges:
    """Head-level edges by backpropagation, the reference for the closed form.

    For target j and head h: one modified backward from block output j (seeded with f's
    gradient there) with the gradient at the head outputs zeroed except for head h; the same
    with every head zeroed leaves only the residual path, and the difference is head h's edges.
    (j, h) rows are packed ``batch_size`` to a backward pass."""
    from .attention_impl import attention_function

    device = next(model.parameters()).device
    ids = torch.tensor([list(token_ids)], device=device)
    if traced is None:
        traced = trace(model, ids, objective, split=False)
    all_blocks = decoder_blocks(model)
    if len(traced.states) != len(all_blocks) + 1:
        raise ValueError("the per-head reference needs a trace without the mid-block split")
    chosen = check_blocks(blocks, len(all_blocks))
    n = ids.shape[1]
    n_heads = model.config.num_attention_heads
    if batch_size is None:
        batch_size = _model_packing_size(model, traced, memory_budget_gb)
    per_block, residuals = [], []
    passes = 0
    with (
        lxt.lrp_rules(model),
        torch.enable_grad(),
        attention_function(model, HEAD_MASK_IMPLEMENTATION, _head_masked_attention),
    ):
        for index in chosen:
            source, seed = traced.states[index], traced.grads[index + 1]
            targets = [j for j in range(n) if bool(seed[0, j].any())]
            # head n_heads stands for "every head masked": the residual path alone
            rows = [(j, h) for j in targets for h in range(n_heads + 1)]
            result = np.zeros((n_heads + 1, n, n))
            run = _chain(all_blocks, traced.calls, range(index, index + 1))
            for start in range(0, len(rows), batch_size):
                part = rows[start : start + batch_size]
                mask = torch.zeros(len(part), n_heads, dtype=source.dtype, device=device)
                for row, (_, h) in enumerate(part):
                    if h < n_heads:
                        mask[row, h] = 1
                _HEAD_MASK.append(mask)
                try:
                    values = _packed_rows(run, source, seed, [j for j, _ in part])
                finally:
                    _HEAD_MASK.pop()
                passes += 1
                for row, (j, h) in enumerate(part):
                    result[h, j] = values[row]
            residual_rows = result[n_heads]
            per_block.append(result[:n_heads] - residual_rows[None])
            residuals.append(np.diag(residual_rows).copy())
    relevance = node_relevance(traced)
    return HeadEdges(
        tokens=tuple(tokenizer.convert_ids_to_tokens(list(token_ids))),
        blocks=tuple(chosen),
        heads=np.stack(per_block) if per_block else np.zeros((0, n_heads, n, n)),
        residual=np.stack(residuals) if residuals else np.zeros((0, n)),
        source_relevance=relevance[chosen],
        meta={"method": "packed", "backward_passes": passes, "batch_size": batch_size},
    )
