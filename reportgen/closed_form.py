"""Exact attribution-graph edges in closed form (SPEC.md section 7).

One modified backward pass of f gives, at every block, the gradient ``u`` at the attention's head
outputs and the gradient at the residual sum h_s + attention branch, for all positions at once.
Everything in a block except the attention mixing is position-wise, so row j of these gradients
is what a backward seeded at target j alone would give.  The edges s -> t (and s -> mid) are then
attention-sized pairwise products per layer:

- value path  E^v[j,i] = s_v a[j,i] <u_j, v°_i>
- key path    E^k[j,i] = s_qk a[j,i] (<u_j,v_i> - sum_m a[j,m] <u_j,v_m>) <q_j, k°_i> * scale
- query path  E^q[j,j] = s_qk sum_l a[j,l] (<u_j,v_l> - sum_m a[j,m] <u_j,v_m>) <k_l, q°_j> * scale
- residual    R^res[j] = <g_res[j], h_s[j]>

summed over heads, with s_v = 1/2, s_qk = 1/4 the uniform-rule shares lxt applies to the
projection outputs (``u`` is taken *after* the attention function, upstream of those shares, so
they are applied here exactly once).  q°, k°, v° are the forward-mode derivative (JVP) of the
position-wise map h_s[i] -> (q_i, k_i, v_i) along h_s[i] itself, with the norm denominators
detached as under the lxt rules; biases drop out of it automatically.

The per-layer tensors are captured at the attention-function call: the model is switched for
the duration of the computation to a registered attention implementation that records
(query, key, value, attention_mask, scaling) and then runs transformers' own sdpa.  The
attention weights are recomputed from those with the model's own mask, so causal, sliding-window
and bidirectional masks are honoured without knowing which one the model uses.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.autograd.forward_ad as fwAD
from torch import nn

import lxt
from lxt.patches import QK_SHARE, V_SHARE
from lxt.rules import LayerNormRule, RMSNormRule

from .graph import (
    MID_STATE,
    AttributionGraph,
    Trace,
    _EdgeBuffer,
    _replay,
    decoder_blocks,
    trace,
)
from .objectives import Objective

#: the registered attention implementation (and mask implementation) used while capturing
IMPLEMENTATION = "reportgen_closed_form"

#: model_type -> submodule of a block whose input is the residual sum h_s + attention branch
RESIDUAL_SUM: dict[str, str] = {
    **{t: MID_STATE[t] for t in MID_STATE if t != "bert"},
    "bert": "attention.output.LayerNorm",  # BERT adds the residual inside its post-attention norm
}

#: attention-call keyword arguments the closed form does not model (the call then raises)
_UNSUPPORTED_KWARGS = ("softcap", "position_bias", "s_aux", "sinks")


class ClosedFormUnsupportedError(lxt.UnsupportedArchitectureError):
    """The model's blocks are not of the shape the closed form needs; use the packed backward."""


class _Stop(Exception):
    """Raised inside the attention call to end a forward-mode replay of a block early."""


@dataclass
class _Attention:
    """What one attention call saw (batch of one)."""

    query: torch.Tensor  # [heads, n, d] (rotated)
    key: torch.Tensor  # [kv heads, n, d]
    value: torch.Tensor  # [kv heads, n, d_v]
    mask: torch.Tensor | None  # [1 or heads, n, n], bool (True = attend) or additive float
    causal: bool  # only used when mask is None
    scaling: float
    output: torch.Tensor  # [1, n, heads, d_v], gradient retained


@dataclass
class _Recorder:
    layer_of: dict[int, int]  # id(attention module) -> block index
    calls: dict[int, _Attention] = field(default_factory=dict)
    jvp: bool = False
    tangents: tuple[torch.Tensor | None, ...] | None = None


_ACTIVE: list[_Recorder] = []


def _capture_attention(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    **kwargs: Any,
) -> tuple[torch.Tensor, Any]:
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    recorder = _ACTIVE[-1] if _ACTIVE else None
    if recorder is None or id(module) not in recorder.layer_of:
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    if recorder.jvp:
        recorder.tangents = tuple(fwAD.unpack_dual(x).tangent for x in (query, key, value))
        raise _Stop
    for name in _UNSUPPORTED_KWARGS:
        if kwargs.get(name) is not None:
            raise ClosedFormUnsupportedError(
                f"attention with {name!r} is not covered by the closed form"
            )
    if kwargs.get("dropout", 0.0):
        raise ClosedFormUnsupportedError("attention dropout is active (call model.eval())")
    if query.shape[0] != 1:
        raise ClosedFormUnsupportedError("the closed form handles a batch of one sequence")
    output, weights = sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    if output.requires_grad:
        output.retain_grad()
    is_causal = kwargs.get("is_causal")
    is_causal = is_causal if is_causal is not None else getattr(module, "is_causal", True)
    scaling = kwargs.get("scaling")
    mask = attention_mask[0].detach() if attention_mask is not None else None
    recorder.calls[recorder.layer_of[id(module)]] = _Attention(
        query=query[0].detach(),
        key=key[0].detach(),
        value=value[0].detach(),
        mask=mask,
        causal=bool(is_causal) and query.shape[2] > 1,
        scaling=float(scaling) if scaling is not None else 1.0 / math.sqrt(query.shape[-1]),
        output=output,
    )
    return output, weights


def _register() -> None:
    """Add our implementation to transformers' registries (class-level ``register``, which keeps
    every other entry; calling it again is harmless)."""
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask
    from transformers.modeling_utils import AttentionInterface

    AttentionInterface.register(IMPLEMENTATION, _capture_attention)
    AttentionMaskInterface.register(IMPLEMENTATION, sdpa_mask)


def _configs(model: nn.Module) -> list[Any]:
    seen: dict[int, Any] = {}
    for module in model.modules():
        config = getattr(module, "config", None)
        if config is not None and hasattr(config, "_attn_implementation_internal"):
            seen.setdefault(id(config), config)
            for name in getattr(config, "sub_configs", {}) or {}:
                sub = getattr(config, name, None)
                if sub is not None and hasattr(sub, "_attn_implementation_internal"):
                    seen.setdefault(id(sub), sub)
    return list(seen.values())


@contextlib.contextmanager
def _capturing(model: nn.Module, recorder: _Recorder) -> Iterator[_Recorder]:
    """Switch every config of ``model`` to the capturing attention implementation."""
    _register()
    configs = _configs(model)
    previous = [config._attn_implementation_internal for config in configs]
    for config in configs:
        config._attn_implementation_internal = IMPLEMENTATION
    _ACTIVE.append(recorder)
    try:
        yield recorder
    finally:
        _ACTIVE.remove(recorder)
        for config, value in zip(configs, previous, strict=True):
            config._attn_implementation_internal = value


def supports_closed_form(model: nn.Module) -> bool:
    """True when ``model`` is an architecture the closed form is known to handle exactly
    (lxt patch map, a known residual sum, attention through transformers' AttentionInterface)."""
    try:
        model_type = lxt.core.model_type_of(model)
        lxt.patch_map_for(model)
    except lxt.UnsupportedArchitectureError:
        return False
    if model_type not in RESIDUAL_SUM:
        return False
    if getattr(model, "is_quantized", False) or getattr(model, "hf_quantizer", None) is not None:
        return False  # quantised layers: forward-mode derivatives not verified
    can_set = getattr(model, "_can_set_attn_implementation", None)
    if callable(can_set):
        try:
            if not can_set():
                return False
        except Exception:  # noqa: BLE001 - a private helper; be conservative
            return False
    return True


def _attention_modules(blocks: nn.ModuleList) -> dict[int, int]:
    """id(module) -> block index for every submodule (the attention module is among them)."""
    return {id(m): index for index, block in enumerate(blocks) for m in block.modules()}


def _norm_only_map(model: nn.Module) -> dict[str, Any]:
    """The lxt patch map restricted to the norm rules: the forward of the position-wise map
    h_s -> (q, k, v) as the rules see it (denominators detached), without the custom autograd
    Functions of the gradient shares (which have no forward-mode derivative and are identities
    in the forward anyway)."""
    return {
        selector: rule
        for selector, rule in lxt.patch_map_for(model).items()
        if isinstance(rule, (RMSNormRule, LayerNormRule))
    }


def _linear_parts(
    block: nn.Module, call: Any, source: torch.Tensor, recorder: _Recorder
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """q°, k°, v°: the JVP of h_s -> (q, k, v) along h_s, read at the attention call."""
    recorder.jvp, recorder.tangents = True, None
    try:
        with torch.no_grad(), fwAD.dual_level():
            dual = fwAD.make_dual(source, source)
            with contextlib.suppress(_Stop):
                _replay(block, call, dual)
    except (RuntimeError, NotImplementedError) as error:  # e.g. an op without forward-mode AD
        raise ClosedFormUnsupportedError(
            f"forward-mode replay of the block failed: {error}"
        ) from error
    finally:
        recorder.jvp = False
    tangents, recorder.tangents = recorder.tangents, None
    if tangents is None:
        raise ClosedFormUnsupportedError("the block's attention call was not reached")
    return tuple(  # type: ignore[return-value]
        (t[0] if t is not None else None) for t in tangents
    )


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """[kv heads, n, d] -> [heads, n, d] (GQA: each kv head serves consecutive query heads)."""
    if x.shape[0] == heads:
        return x
    return x.repeat_interleave(heads // x.shape[0], dim=0)


def _scores_mask(
    attention: _Attention, rows: slice, n: int, device: torch.device
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(allowed bool mask, additive float mask) for the target rows; None when absent."""
    mask = attention.mask
    if mask is None:
        if not attention.causal:
            return None, None
        j = torch.arange(rows.start, rows.stop, device=device)[:, None]
        return (torch.arange(n, device=device)[None, :] <= j)[None], None
    part = mask[:, rows, :n]
    if part.dtype == torch.bool:
        return part, None
    return None, part


@dataclass
class _Layer:
    """One layer's per-head tensors in the working dtype (kv heads repeated)."""

    q: torch.Tensor  # [H, n, d]
    k: torch.Tensor
    v: torch.Tensor
    q_lin: torch.Tensor  # q°, k°, v°
    k_lin: torch.Tensor
    v_lin: torch.Tensor
    u: torch.Tensor  # [H, n, d_v] gradient at the head outputs


def _layer(
    attention: _Attention, tangents: tuple[torch.Tensor | None, ...], dtype: torch.dtype
) -> _Layer:
    heads = attention.query.shape[0]
    plain = (attention.query, attention.key, attention.value)
    parts = [
        _heads((t if t is not None else torch.zeros_like(x)).to(dtype), heads)
        for t, x in zip(tangents, plain, strict=True)
    ]
    grad = attention.output.grad
    if grad is None:
        grad = torch.zeros_like(attention.output)
    return _Layer(
        q=attention.query.to(dtype),
        k=_heads(attention.key.to(dtype), heads),
        v=_heads(attention.value.to(dtype), heads),
        q_lin=parts[0],
        k_lin=parts[1],
        v_lin=parts[2],
        u=grad[0].transpose(0, 1).to(dtype),
    )


def _layer_rows(
    attention: _Attention, layer: _Layer, rows: slice
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention-path edges E^v + E^k [c, n] and the query-path diagonal E^q [c] for ``rows``."""
    n = layer.k.shape[1]
    q = layer.q[:, rows]
    u = layer.u[:, rows]
    scores = torch.matmul(q, layer.k.transpose(1, 2)) * attention.scaling  # [H, c, n]
    allowed, additive = _scores_mask(attention, rows, n, scores.device)
    if additive is not None:
        scores = scores + additive.to(scores.dtype)
    if allowed is not None:
        scores = scores.masked_fill(~allowed, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    del scores
    weights = torch.nan_to_num(weights)  # fully masked rows (padding) carry nothing
    uv = torch.matmul(u, layer.v.transpose(1, 2))
    # d(softmax input): a[j,i] (<u_j,v_i> - sum_m a[j,m] <u_j,v_m>)
    dscores = weights * (uv - (weights * uv).sum(-1, keepdim=True))
    del uv
    paths = V_SHARE.scale * weights * torch.matmul(u, layer.v_lin.transpose(1, 2))  # E^v
    key_part = torch.matmul(q, layer.k_lin.transpose(1, 2))
    paths += (QK_SHARE.scale * attention.scaling) * dscores * key_part  # E^k
    del key_part
    edges = paths.sum(0)  # heads summed
    del paths
    diagonal = (QK_SHARE.scale * attention.scaling) * (
        dscores * torch.matmul(layer.q_lin[:, rows], layer.k.transpose(1, 2))
    ).sum((0, 2))
    return edges, diagonal


def closed_form(
    model: nn.Module,
    tokenizer: Any,
    token_ids: Sequence[int],
    objective: Objective,
    *,
    split: bool = False,
    chunk: int = 256,
    node_threshold: float = 0.0,
    min_edge_weight: float = 0.0,
    top_per_target: int | None = None,
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> tuple[Trace, AttributionGraph]:
    """The trace of f's modified backward and the attribution graph from it, in closed form.

    Same nodes, node relevance and edge semantics as ``graph.build_graph`` (the reference)."""
    if not supports_closed_form(model):
        raise ClosedFormUnsupportedError(
            f"no closed form for {type(model).__name__}; use the packed backward"
        )
    model_type = lxt.core.model_type_of(model)
    blocks = decoder_blocks(model)
    device = next(model.parameters()).device
    ids = torch.tensor([list(token_ids)], device=device)
    n = ids.shape[1]
    recorder = _Recorder(layer_of=_attention_modules(blocks))
    residuals: dict[int, torch.Tensor] = {}
    handles = []

    def residual_hook(index: int) -> Callable[..., None]:
        def hook(module: nn.Module, args: tuple[Any, ...]) -> None:
            if not recorder.jvp and args[0].requires_grad:
                args[0].retain_grad()
                residuals[index] = args[0]

        return hook

    with _capturing(model, recorder):
        for index, block in enumerate(blocks):
            module = block.get_submodule(RESIDUAL_SUM[model_type])
            handles.append(module.register_forward_pre_hook(residual_hook(index)))
        try:
            traced = trace(model, ids, objective, split=split)
        finally:
            for handle in handles:
                handle.remove()
        if sorted(recorder.calls) != list(range(len(blocks))) or sorted(residuals) != list(
            range(len(blocks))
        ):
            raise ClosedFormUnsupportedError(
                f"captured {len(recorder.calls)} attention calls and {len(residuals)} residual sums"
                f" for {len(blocks)} blocks"
            )
        relevance = np.stack(
            [
                (s * g).sum(-1)[0].double().cpu().numpy()
                for s, g in zip(traced.states, traced.grads, strict=True)
            ]
        )
        work = torch.promote_types(traced.states[0].dtype, torch.float32)
        buffer = _EdgeBuffer(min_edge_weight, top_per_target)
        step = 2 if split else 1
        column_error = 0.0
        skipped = 0
        norm_map = _norm_only_map(model)
        for layer, block in enumerate(blocks):
            source_index = layer * step
            target_index = source_index + 1
            source = traced.states[source_index]
            with lxt.lrp_rules(model, norm_map):
                tangents = _linear_parts(block, traced.calls[layer], source, recorder)
            attention = recorder.calls[layer]
            tensors = _layer(attention, tangents, work)
            del tangents
            gradient = residuals[layer].grad
            residual = (
                (gradient * source).sum(-1)[0].to(work)
                if gradient is not None
                else torch.zeros(n, dtype=work, device=device)
            )
            seed = traced.grads[target_index][0]
            active = (seed != 0).any(-1).cpu().numpy() & (
                np.abs(relevance[target_index]) > node_threshold
            )
            skipped += int((seed != 0).any(-1).sum()) - int(active.sum())
            columns = torch.zeros(n, dtype=torch.float64, device=device)
            for start in range(0, n, chunk):
                rows = slice(start, min(start + chunk, n))
                edges, diagonal = _layer_rows(attention, tensors, rows)
                index = torch.arange(rows.stop - rows.start, device=device)
                edges[index, index + start] += diagonal + residual[rows]
                columns += edges.double().sum(0)
                keep = active[rows]
                if keep.any():
                    targets = np.arange(rows.start, rows.stop)[keep]
                    _add(
                        buffer,
                        source_index,
                        target_index,
                        targets,
                        edges.double().cpu().numpy()[keep],
                    )
            scale = max(float(np.abs(relevance[source_index]).sum()), 1e-30)
            column_error = max(
                column_error,
                float(np.abs(columns.cpu().numpy() - relevance[source_index]).max()) / scale,
            )
            del tensors
            recorder.calls[layer] = None  # type: ignore[assignment] - free the layer's tensors
            if split:
                mid = target_index
                positions = np.nonzero(relevance[mid] != 0)[0]
                buffer.add(mid, mid + 1, positions, np.diag(relevance[mid])[positions])
            progress(layer + 1, len(blocks))
    columns_arrays = buffer.arrays()
    exact = node_threshold == 0.0 and min_edge_weight == 0.0 and top_per_target is None
    meta = {
        "method": "closed",
        "split": split,
        "chunk": chunk,
        "backward_passes": 1,
        "skipped_targets": skipped,
        "node_threshold": node_threshold,
        "min_edge_weight": min_edge_weight,
        "top_per_target": top_per_target,
        "explained": traced.explained,
        "exact": exact,
        "column_sum_error": column_error,
        "note": "closed form (SPEC section 7): column sums equal the source relevance exactly"
        if node_threshold == 0.0
        else f"targets with |R| <= {node_threshold} were left out: column sums are approximate",
    }
    graph = AttributionGraph(
        tokens=tuple(tokenizer.convert_ids_to_tokens(list(token_ids))),
        layers=tuple(traced.names),
        node_relevance=relevance,
        edge_source_layer=columns_arrays[0],
        edge_target_layer=columns_arrays[1],
        edge_source=columns_arrays[2],
        edge_target=columns_arrays[3],
        edge_weight=columns_arrays[4],
        meta=meta,
    )
    return traced, graph


def closed_form_graph(
    model: nn.Module,
    tokenizer: Any,
    token_ids: Sequence[int],
    objective: Objective,
    *,
    split: bool = False,
    chunk: int = 256,
    node_threshold: float = 0.0,
    min_edge_weight: float = 0.0,
    top_per_target: int | None = None,
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> AttributionGraph:
    """``closed_form`` without the trace."""
    return closed_form(
        model,
        tokenizer,
        token_ids,
        objective,
        split=split,
        chunk=chunk,
        node_threshold=node_threshold,
        min_edge_weight=min_edge_weight,
        top_per_target=top_per_target,
        progress=progress,
    )[1]


_PLAIN_ADD = _EdgeBuffer.add


def _add(
    buffer: _EdgeBuffer, source_layer: int, target_layer: int, targets: np.ndarray, rows: np.ndarray
) -> None:
    """``buffer.add`` for a block of rows, vectorised when no per-row top-k is asked for (the
    same edges in the same order)."""
    if buffer.top_per_target is not None or type(buffer).add is not _PLAIN_ADD:
        buffer.add(source_layer, target_layer, targets, rows)
        return
    keep = np.abs(rows) > buffer.min_weight if buffer.min_weight > 0 else rows != 0
    row_index, sources = np.nonzero(keep)
    count = sources.size
    buffer.parts.append(
        (
            np.full(count, source_layer, np.int16),
            np.full(count, target_layer, np.int16),
            sources.astype(np.int32),
            targets[row_index].astype(np.int32),
            rows[row_index, sources].astype(np.float32),
        )
    )
