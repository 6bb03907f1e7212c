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

Long prompts (issue #9): edges are produced in chunks of target rows over only the source
columns the rows can attend to, and pruned while they stream -- a global threshold
(``min_edge_weight``) or the per-layer cumulative mass (``cumulative_mass``, exact: a histogram
of |A| brackets the cutoff, the edges of the bracketing bin give it) -- so no layer's n x n edges
are held. The trace can checkpoint every block (recomputed in the backward pass), and keeps
only the per-position residual term and the head-output gradient of each block, not the
activations they come from.
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

from .attention_impl import attention_function
from .graph import (
    MID_STATE,
    AttributionGraph,
    HeadEdges,
    Trace,
    _EdgeBuffer,
    _replay,
    check_blocks,
    decoder_blocks,
    node_relevance,
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
    shape: tuple[int, ...]  # of the output [1, n, heads, d_v]
    grad: torch.Tensor | None = None  # the output's gradient, set by a hook in the backward


@dataclass
class _Recorder:
    layer_of: dict[int, int]  # id(attention module) -> block index
    calls: dict[int, _Attention] = field(default_factory=dict)
    jvp: bool = False
    replay: bool = False  # a checkpointed block is being recomputed in the backward pass
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
    if recorder is None or id(module) not in recorder.layer_of or recorder.replay:
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
        shape=tuple(output.shape),
    )
    if output.requires_grad:  # keep only the gradient, not the output itself
        call = recorder.calls[recorder.layer_of[id(module)]]
        output.register_hook(lambda grad: setattr(call, "grad", grad.detach()))
    return output, weights


@contextlib.contextmanager
def _capturing(model: nn.Module, recorder: _Recorder) -> Iterator[_Recorder]:
    """Route every attention call of ``model`` through the capturing implementation."""
    with attention_function(model, IMPLEMENTATION, _capture_attention):
        _ACTIVE.append(recorder)
        try:
            yield recorder
        finally:
            _ACTIVE.remove(recorder)


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


@dataclass
class _Layer:
    """One layer's per-head tensors in the working dtype (kv heads repeated).

    ``q_lin``/``k_lin``/``v_lin`` are None where they equal ``q``/``k``/``v`` bit for bit
    (bias-free projections): the products with them are then reused instead of recomputed."""

    q: torch.Tensor  # [H, n, d]
    k: torch.Tensor
    v: torch.Tensor
    q_lin: torch.Tensor | None  # q°, k°, v°
    k_lin: torch.Tensor | None
    v_lin: torch.Tensor | None
    u: torch.Tensor  # [H, n, d_v] gradient at the head outputs


def _layer(
    attention: _Attention, tangents: tuple[torch.Tensor | None, ...], dtype: torch.dtype
) -> _Layer:
    heads = attention.query.shape[0]
    plain = (attention.query, attention.key, attention.value)
    parts: list[torch.Tensor | None] = []
    for t, x in zip(tangents, plain, strict=True):
        t = t if t is not None else torch.zeros_like(x)
        parts.append(None if torch.equal(t, x) else _heads(t.to(dtype), heads))
    grad = attention.grad
    if grad is None:
        grad = torch.zeros(
            attention.shape, dtype=attention.query.dtype, device=attention.query.device
        )
    return _Layer(
        q=attention.query.to(dtype),
        k=_heads(attention.key.to(dtype), heads),
        v=_heads(attention.value.to(dtype), heads),
        q_lin=parts[0],
        k_lin=parts[1],
        v_lin=parts[2],
        u=grad[0].transpose(0, 1).to(dtype),
    )


def _columns(attention: _Attention, rows: slice, n: int) -> slice:
    """The source columns the target ``rows`` can attend to (always including the rows
    themselves, where the query/residual terms sit); every edge outside is exactly zero."""
    mask = attention.mask
    if mask is None:
        return slice(0, rows.stop if attention.causal else n)
    part = mask[:, rows, :n]
    allowed = part if part.dtype == torch.bool else part > float("-inf")
    hit = torch.nonzero(allowed.any(0).any(0))
    if hit.numel() == 0:
        return slice(rows.start, rows.stop)
    return slice(min(int(hit[0]), rows.start), max(int(hit[-1]) + 1, rows.stop))


def _scores_mask(
    attention: _Attention, rows: slice, columns: slice, device: torch.device
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(allowed bool mask, additive float mask) for the target rows; None when absent."""
    mask = attention.mask
    if mask is None:
        if not attention.causal:
            return None, None
        if columns.stop <= rows.start + 1:  # every column is at or before the first row
            return None, None
        j = torch.arange(rows.start, rows.stop, device=device)[:, None]
        return (torch.arange(columns.start, columns.stop, device=device)[None, :] <= j)[None], None
    part = mask[:, rows, columns]
    if part.dtype == torch.bool:
        return part, None
    return None, part


def _plain_rows(
    attention: _Attention, layer: _Layer, rows: slice, columns: slice
) -> tuple[torch.Tensor, torch.Tensor]:
    """``_layer_rows`` for bias-free projections (q° = q, k° = k, v° = v) and no explicit mask
    (causal or none): the same terms with the fewest passes over the [heads, c, m] tensors,
    which dominate the cost of long prompts."""
    k = layer.k[:, columns]
    scores = torch.matmul(layer.q[:, rows] * attention.scaling, k.transpose(1, 2))  # [H, c, m]
    block = None
    if attention.causal and rows.stop - 1 > rows.start:  # only the last c columns need it
        c = rows.stop - rows.start
        block = scores[:, :, rows.start - columns.start : rows.stop - columns.start]
        above = torch.arange(c, device=scores.device)
        above = above[None, :] > above[:, None]
        block.masked_fill_(above, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    if block is not None:
        block.masked_fill_(above, 0.0)  # finite again; the weights (and dscores) are 0 there
    weighted = torch.matmul(layer.u[:, rows], layer.v[:, columns].transpose(1, 2)).mul_(weights)
    # dscores = a (<u,v> - sum_m a <u,v_m>), then times the scaled scores: the key-path factor
    dscores = torch.addcmul(weighted, weights, weighted.sum(-1, keepdim=True), value=-1)
    del weights
    dscores.mul_(scores)
    del scores
    diagonal = QK_SHARE.scale * dscores.sum((0, 2))  # query path: the same product, summed
    paths = dscores.add_(weighted, alpha=V_SHARE.scale / QK_SHARE.scale)
    del weighted
    return paths.sum(0).mul_(QK_SHARE.scale), diagonal


def _layer_rows(
    attention: _Attention, layer: _Layer, rows: slice, *, per_head: bool = False
) -> tuple[torch.Tensor, torch.Tensor, slice]:
    """Attention-path edges E^v + E^k [c, m] over the source ``columns`` (m of them; all other
    sources get exactly zero), the query-path diagonal E^q [c], and ``columns``; with
    ``per_head`` the same terms before the sum over heads ([H, c, m] and [H, c])."""
    n = layer.k.shape[1]
    columns = _columns(attention, rows, n)
    if (
        not per_head
        and attention.mask is None
        and layer.q_lin is layer.k_lin is layer.v_lin is None
    ):
        return (*_plain_rows(attention, layer, rows, columns), columns)
    q = layer.q[:, rows]
    u = layer.u[:, rows]
    k = layer.k[:, columns]
    v = layer.v[:, columns]
    qk = torch.matmul(q, k.transpose(1, 2))  # [H, c, m]
    scores = qk * attention.scaling
    allowed, additive = _scores_mask(attention, rows, columns, scores.device)
    if additive is not None:
        scores += additive.to(scores.dtype)
    if allowed is not None:
        scores.masked_fill_(~allowed, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    del scores
    weights = torch.nan_to_num_(weights)  # fully masked rows (padding) carry nothing
    uv = torch.matmul(u, v.transpose(1, 2))
    if layer.v_lin is not None:
        value = torch.matmul(u, layer.v_lin[:, columns].transpose(1, 2)).mul_(weights)
        uv.mul_(weights)
    else:
        uv.mul_(weights)
        value = uv
    # d(softmax input): a[j,i] (<u_j,v_i> - sum_m a[j,m] <u_j,v_m>); uv now holds a * <u, v>
    dscores = uv - weights * uv.sum(-1, keepdim=True)
    del weights
    paths = value.mul(V_SHARE.scale)  # E^v
    del value, uv
    qk_scale = QK_SHARE.scale * attention.scaling
    if layer.k_lin is not None:
        key_part = torch.matmul(q, layer.k_lin[:, columns].transpose(1, 2))
        paths.addcmul_(dscores, key_part, value=qk_scale)  # E^k
        del key_part
    else:
        paths.addcmul_(dscores, qk, value=qk_scale)
    edges = paths if per_head else paths.sum(0)  # heads summed
    del paths
    if layer.q_lin is not None:
        del qk
        query_part = torch.matmul(layer.q_lin[:, rows], k.transpose(1, 2))
    else:
        query_part = qk
    diagonal = qk_scale * (dscores * query_part).sum(2 if per_head else (0, 2))
    return edges, diagonal, columns


#: sequences at least this long are traced with per-block activation checkpointing by default
CHECKPOINT_FROM = 4096

#: float32 magnitudes binned by their top 16 bits (exponent + 7 mantissa bits): 128 bins per
#: octave, monotone in the magnitude, no range to guess
_BINS = 1 << 15

#: while streaming, a chunk keeps its candidate edges down to this many bins (2 octaves) below
#: the running cumulative-mass cutoff; chunks whose floor ends up above the final cutoff are
#: recomputed in a second pass
_MARGIN_BINS = 256


def _bin_of(magnitude: np.ndarray) -> np.ndarray:
    """Bin index of non-negative float32 magnitudes (bit pattern order = value order)."""
    return (magnitude.view(np.int32) >> 16).astype(np.int64)


def _candidates(
    rows: np.ndarray, targets: np.ndarray, offset: int, min_weight: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sources, targets, float32 weights) of the edges kept from ``rows`` (float64 [c, m],
    source columns offset..offset+m), in ``_EdgeBuffer``'s order: the non-zero ones, or with
    ``min_weight`` those whose stored float32 weight has |w| > min_weight (exactly the edges
    ``prune.prune_threshold`` keeps of the full graph)."""
    if min_weight > 0:
        stored = rows.astype(np.float32)
        row_index, columns = np.nonzero(np.abs(stored) > min_weight)
        weights = stored[row_index, columns]
    else:
        row_index, columns = np.nonzero(rows)
        weights = rows[row_index, columns].astype(np.float32)
    return (columns + offset).astype(np.int32), targets[row_index].astype(np.int32), weights


@dataclass
class _MassCut:
    """Exact per-transition cumulative-mass pruning (SPEC section 4) without the full edge list.

    A histogram of |A| (count and exact float64 sum per bin) brackets the cutoff a_k* to one
    bin; the edges in that bin are then collected exactly to find a_k* itself, so the kept set
    is that of ``prune.prune_cumulative_mass`` on the full graph (up to the float64 rounding of
    the running sums)."""

    p: float
    counts: np.ndarray = field(default_factory=lambda: np.zeros(_BINS, np.int64))
    sums: np.ndarray = field(default_factory=lambda: np.zeros(_BINS, np.float64))

    def observe(self, weights: np.ndarray) -> None:
        magnitude = np.abs(weights)
        magnitude = magnitude[magnitude > 0]
        if magnitude.size:
            bins = _bin_of(magnitude)
            self.counts += np.bincount(bins, minlength=_BINS)
            self.sums += np.bincount(bins, weights=magnitude.astype(np.float64), minlength=_BINS)

    def add(self, counts: np.ndarray, sums: np.ndarray) -> None:
        self.counts += counts
        self.sums += sums

    def bracket(self) -> tuple[int, float, float] | None:
        """(bin of a_k*, mass in the bins above it, p * total), or None if nothing is kept."""
        present = np.nonzero(self.counts)[0][::-1]  # non-empty bins, largest first
        if present.size == 0:
            return None
        cumulative = np.cumsum(self.sums[present])
        goal = self.p * cumulative[-1]
        index = min(int(np.searchsorted(cumulative, goal, side="left")), present.size - 1)
        chosen = int(present[index])
        return chosen, float(cumulative[index] - self.sums[chosen]), float(goal)


def _select(
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]], cut: tuple[int, float, float] | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The edges of ``parts`` (sources, targets, weights; together a superset of every edge in
    and above the cutoff bin) kept by the cumulative-mass rule, ordered by (target, source)."""
    if cut is None or not parts:
        return np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0, np.float32)
    chosen, above, goal = cut
    sources = np.concatenate([s for s, _, _ in parts])
    targets = np.concatenate([t for _, t, _ in parts])
    weights = np.concatenate([w for _, _, w in parts])
    magnitude = np.abs(weights)
    bins = _bin_of(magnitude)
    in_bin = np.sort(magnitude[bins == chosen].astype(np.float64))[::-1]
    cumulative = above + np.cumsum(in_bin)
    index = min(int(np.searchsorted(cumulative, goal, side="left")), in_bin.size - 1)
    cutoff = np.float32(in_bin[index])
    keep = (magnitude >= cutoff) & (magnitude > 0)
    order = np.lexsort((sources[keep], targets[keep]))
    return sources[keep][order], targets[keep][order], weights[keep][order]


class _ChunkEdges:
    """One chunk's edges (torch [c, m], source columns offset..offset+m) for the active target
    rows, as ``_candidates`` selects them, without leaving torch for the full block."""

    def __init__(
        self, edges: torch.Tensor, keep: np.ndarray, start: int, offset: int, min_weight: float
    ) -> None:
        index = np.nonzero(keep)[0]
        if index.size < keep.size:
            edges = edges[torch.from_numpy(index).to(edges.device)]
        self.targets = (start + index).astype(np.int32)
        self.offset = offset
        self.weights = edges.to(torch.float32)  # what the graph stores
        self.magnitude = self.weights.abs()
        if min_weight > 0:
            self.valid = self.magnitude > min_weight
        else:  # non-zero in the working dtype, as the unpruned edge list
            self.valid = edges != 0
        self.bins = self.magnitude.view(torch.int32) >> 16

    def histogram(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-bin count and float64 sum of the non-zero magnitudes."""
        bins = torch.where(self.valid & (self.magnitude > 0), self.bins, _BINS).flatten().long()
        counts = torch.bincount(bins, minlength=_BINS + 1)[:_BINS]
        sums = torch.bincount(bins, weights=self.magnitude.flatten().double(), minlength=_BINS + 1)
        return counts.cpu().numpy(), sums[:_BINS].cpu().numpy()

    def take(self, floor: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(sources, targets, weights) of the selected edges in bins >= ``floor`` (0: all)."""
        chosen = self.valid if floor <= 0 else self.valid & (self.bins >= floor)
        rows, columns = torch.nonzero(chosen, as_tuple=True)
        return (
            (columns + self.offset).to(torch.int32).cpu().numpy(),
            self.targets[rows.cpu().numpy()],
            self.weights[rows, columns].cpu().numpy(),
        )


def _emit(
    buffer: _EdgeBuffer,
    source_layer: int,
    target_layer: int,
    edges: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    sources, targets, weights = edges
    count = sources.size
    buffer.parts.append(
        (
            np.full(count, source_layer, np.int16),
            np.full(count, target_layer, np.int16),
            sources,
            targets,
            weights,
        )
    )


@contextlib.contextmanager
def _quiet_hooks(block: nn.Module, model: nn.Module) -> Iterator[None]:
    """While a checkpointed block is recomputed in the backward pass, run only the lxt rule hooks
    on its submodules (the tracing hooks already saw the original forward)."""
    patch = getattr(model, "_lxt_patch", None)
    rule_ids = {handle.id for handle in patch.handles} if patch is not None else set()
    saved = []
    for module in block.modules():
        if module is block:
            continue
        saved.append((module, module._forward_pre_hooks, module._forward_hooks))
        module._forward_pre_hooks = type(module._forward_pre_hooks)(
            (k, h) for k, h in module._forward_pre_hooks.items() if k in rule_ids
        )
        module._forward_hooks = type(module._forward_hooks)(
            (k, h) for k, h in module._forward_hooks.items() if k in rule_ids
        )
    try:
        yield
    finally:
        for module, pre_hooks, hooks in saved:
            module._forward_pre_hooks, module._forward_hooks = pre_hooks, hooks


@contextlib.contextmanager
def _checkpointed(model: nn.Module, blocks: nn.ModuleList, recorder: _Recorder) -> Iterator[None]:
    """Per-block activation checkpointing (non-reentrant) for the trace: each block keeps only
    its input and what the tracing hooks hold, and is recomputed during the backward pass. The
    original autograd graph is kept, so retained gradients of tensors inside the block are
    filled as without checkpointing."""
    from torch.utils.checkpoint import checkpoint

    def wrap(block: nn.Module, original: Callable[..., Any]) -> Callable[..., Any]:
        def forward(*args: Any, **kwargs: Any) -> Any:
            runs = [0]

            def run(*a: Any, **k: Any) -> Any:
                runs[0] += 1
                if runs[0] == 1:
                    return original(*a, **k)
                recorder.replay = True
                try:
                    with _quiet_hooks(block, model):
                        return original(*a, **k)
                finally:
                    recorder.replay = False

            return checkpoint(run, *args, use_reentrant=False, **kwargs)

        return forward

    patched = []
    for block in blocks:
        own = block.__dict__.get("forward")
        block.forward = wrap(block, block.forward)
        patched.append((block, own))
    try:
        yield
    finally:
        for block, own in patched:
            if own is None:
                del block.forward
            else:
                block.forward = own


def _chunk_edges(
    attention: _Attention, layer: _Layer, residual: torch.Tensor, start: int, chunk: int
) -> tuple[torch.Tensor, slice]:
    """All edges E[j, i] of the targets start..start+chunk over the source ``columns``."""
    rows = slice(start, min(start + chunk, residual.shape[0]))
    edges, diagonal, columns = _layer_rows(attention, layer, rows)
    index = torch.arange(rows.stop - rows.start, device=edges.device)
    edges[index, index + start - columns.start] += diagonal + residual[rows]
    return edges, columns


@dataclass
class _Session:
    """f's modified backward, traced once with every block's attention call captured: what each
    layer's closed-form edges are computed from."""

    model: nn.Module
    blocks: nn.ModuleList
    recorder: _Recorder
    traced: Trace
    residuals: dict[int, torch.Tensor | None]  # block -> <g_mid[j], h_s[j]> (None: no gradient)
    relevance: np.ndarray  # [node layers, n] float64
    checkpoint: bool
    step: int  # node layers per block (2 with the mid-block split)
    norm_map: dict[str, Any]  # the norm rules alone: the forward-mode replay's patch map

    @property
    def n(self) -> int:
        return self.relevance.shape[1]

    @property
    def work(self) -> torch.dtype:
        return torch.promote_types(self.traced.states[0].dtype, torch.float32)

    def layer(self, index: int) -> tuple[_Attention, _Layer, torch.Tensor]:
        """Block ``index``'s attention call, its per-head tensors (with q°, k°, v° from a
        forward-mode replay) and its residual-path diagonal."""
        source = self.traced.states[index * self.step]
        with lxt.lrp_rules(self.model, self.norm_map):
            tangents = _linear_parts(
                self.blocks[index], self.traced.calls[index], source, self.recorder
            )
        attention = self.recorder.calls[index]
        tensors = _layer(attention, tangents, self.work)
        residual = self.residuals[index]
        if residual is None:
            residual = torch.zeros(self.n, dtype=self.work, device=source.device)
        return attention, tensors, residual.to(self.work)

    def release(self, index: int) -> None:
        self.recorder.calls[index] = None  # type: ignore[assignment] - free the layer's tensors


@contextlib.contextmanager
def _session(
    model: nn.Module,
    token_ids: Sequence[int],
    objective: Objective,
    *,
    split: bool,
    checkpoint: bool | None,
) -> Iterator[_Session]:
    if not supports_closed_form(model):
        raise ClosedFormUnsupportedError(
            f"no closed form for {type(model).__name__}; use the packed backward"
        )
    model_type = lxt.core.model_type_of(model)
    blocks = decoder_blocks(model)
    device = next(model.parameters()).device
    ids = torch.tensor([list(token_ids)], device=device)
    if checkpoint is None:
        checkpoint = ids.shape[1] >= CHECKPOINT_FROM
    recorder = _Recorder(layer_of=_attention_modules(blocks))
    # per block: its input h_s, then <g_res[j], h_s[j]> (the residual edge) once the backward
    # reaches the residual sum; neither the residual sum nor its gradient is kept
    inputs: dict[int, torch.Tensor] = {}
    residuals: dict[int, torch.Tensor | None] = {}
    handles = []

    def input_hook(index: int) -> Callable[..., None]:
        def hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            inputs[index] = (args[0] if args else kwargs["hidden_states"]).detach()

        return hook

    def residual_hook(index: int) -> Callable[..., None]:
        def reduce(grad: torch.Tensor) -> None:
            residuals[index] = (grad * inputs[index]).sum(-1)[0]

        def hook(module: nn.Module, args: tuple[Any, ...]) -> None:
            if not recorder.jvp and not recorder.replay and args[0].requires_grad:
                residuals.setdefault(index, None)
                args[0].register_hook(reduce)

        return hook

    with _capturing(model, recorder):
        for index, block in enumerate(blocks):
            module = block.get_submodule(RESIDUAL_SUM[model_type])
            handles.append(module.register_forward_pre_hook(residual_hook(index)))
            handles.append(block.register_forward_pre_hook(input_hook(index), with_kwargs=True))
        try:
            with _checkpointed(model, blocks, recorder) if checkpoint else contextlib.nullcontext():
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
        relevance = node_relevance(traced)
        inputs.clear()
        yield _Session(
            model,
            blocks,
            recorder,
            traced,
            residuals,
            relevance,
            checkpoint,
            step=2 if split else 1,
            norm_map=_norm_only_map(model),
        )


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
    cumulative_mass: float | None = None,
    checkpoint: bool | None = None,
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> tuple[Trace, AttributionGraph]:
    """The trace of f's modified backward and the attribution graph from it, in closed form.

    Same nodes, node relevance and edge semantics as ``graph.build_graph`` (the reference).

    Pruning while streaming (no layer's n x n edges are ever held):
    ``min_edge_weight`` keeps |A| > tau (= ``prune.prune_threshold``); ``cumulative_mass=p``
    keeps, per transition, the edges ``prune.prune_cumulative_mass(graph, p)`` keeps on the full
    graph (of the edges the other options leave). ``checkpoint`` recomputes each block in the
    backward pass instead of storing its activations (default: from ``CHECKPOINT_FROM`` tokens)."""
    if cumulative_mass is not None and top_per_target is not None:
        raise ValueError("cumulative_mass and top_per_target cannot be combined")
    with _session(model, token_ids, objective, split=split, checkpoint=checkpoint) as session:
        traced, relevance, n = session.traced, session.relevance, session.n
        blocks, device = session.blocks, traced.states[0].device
        buffer = _EdgeBuffer(min_edge_weight, top_per_target)
        column_error = 0.0
        skipped = recomputed = 0
        starts = range(0, n, chunk)
        for layer in range(len(blocks)):
            source_index = layer * session.step
            target_index = source_index + 1
            attention, tensors, residual = session.layer(layer)
            seed = traced.grads[target_index][0]
            active = (seed != 0).any(-1).cpu().numpy() & (
                np.abs(relevance[target_index]) > node_threshold
            )
            skipped += int((seed != 0).any(-1).sum()) - int(active.sum())

            columns_sum = torch.zeros(n, dtype=torch.float64, device=device)
            cut = _MassCut(cumulative_mass) if cumulative_mass is not None else None
            stored: list[tuple[int, list[tuple[np.ndarray, ...]]]] = []  # (floor bin, parts)
            for start in starts:
                edges, columns = _chunk_edges(attention, tensors, residual, start, chunk)
                columns_sum[columns] += edges.sum(0, dtype=torch.float64)
                keep = active[start : start + chunk]
                if not keep.any():
                    stored.append((-1, []))
                    continue
                if cut is None and (
                    top_per_target is not None or buffer.wants_rows
                ):  # per-row top-k, or a buffer that records its rows
                    targets = np.arange(start, start + keep.size)[keep]
                    rows = edges.double().cpu().numpy()[keep]
                    _add(buffer, source_index, target_index, targets, rows, columns.start, n)
                    continue
                chunk_edges = _ChunkEdges(edges, keep, start, columns.start, min_edge_weight)
                del edges
                if cut is None:
                    _emit(buffer, source_index, target_index, chunk_edges.take(0))
                    continue
                cut.add(*chunk_edges.histogram())
                running = cut.bracket()
                floor = max(running[0] - _MARGIN_BINS, 0) if running is not None else 0
                stored.append((floor, [chunk_edges.take(floor)]))
                del chunk_edges
            if cut is not None:
                final = cut.bracket()
                parts = []
                for start, (floor, kept) in zip(starts, stored, strict=True):
                    if final is None or floor <= final[0]:
                        parts.extend(kept)
                        continue
                    recomputed += 1  # the running floor was above the final cutoff bin
                    edges, columns = _chunk_edges(attention, tensors, residual, start, chunk)
                    keep = active[start : start + chunk]
                    parts.append(
                        _ChunkEdges(edges, keep, start, columns.start, min_edge_weight).take(
                            final[0]
                        )
                    )
                    del edges
                del stored
                _emit(buffer, source_index, target_index, _select(parts, final))
                del parts
            scale = max(float(np.abs(relevance[source_index]).sum()), 1e-30)
            column_error = max(
                column_error,
                float(np.abs(columns_sum.cpu().numpy() - relevance[source_index]).max()) / scale,
            )
            del tensors
            session.release(layer)
            if split:
                mid = target_index
                positions = np.nonzero(relevance[mid] != 0)[0]
                if cut is None and buffer.wants_rows:
                    buffer.add(mid, mid + 1, positions, np.diag(relevance[mid])[positions])
                else:  # the MLP half is position-wise: the diagonal R_mid, never as n x n
                    found = _candidates(
                        relevance[mid][positions, None], positions, 0, min_edge_weight
                    )
                    found = (found[1], found[1].copy(), found[2])  # source = target
                    if cut is not None:
                        mass = _MassCut(cumulative_mass)
                        mass.observe(found[2])
                        found = _select([found], mass.bracket())
                    _emit(buffer, mid, mid + 1, found)
            progress(layer + 1, len(blocks))
    columns_arrays = buffer.arrays()
    exact = (
        node_threshold == 0.0
        and min_edge_weight == 0.0
        and top_per_target is None
        and cumulative_mass is None
    )
    meta = {
        "method": "closed",
        "split": split,
        "chunk": chunk,
        "backward_passes": 1,
        "skipped_targets": skipped,
        "node_threshold": node_threshold,
        "min_edge_weight": min_edge_weight,
        "top_per_target": top_per_target,
        "checkpointed": session.checkpoint,
        "explained": traced.explained,
        "exact": exact,
        "column_sum_error": column_error,
        "note": "closed form (SPEC section 7): column sums equal the source relevance exactly"
        if node_threshold == 0.0
        else f"targets with |R| <= {node_threshold} were left out: column sums are approximate",
    }
    if cumulative_mass is not None:
        meta["pruned_cumulative_mass"] = cumulative_mass
        meta["recomputed_chunks"] = recomputed
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


def closed_form_graph(*args: Any, **kwargs: Any) -> AttributionGraph:
    """``closed_form`` (same arguments) without the trace: one parameter list to keep."""
    return closed_form(*args, **kwargs)[1]


def _add(
    buffer: _EdgeBuffer,
    source_layer: int,
    target_layer: int,
    targets: np.ndarray,
    rows: np.ndarray,
    offset: int,
    n: int,
) -> None:
    """``buffer.add`` for a block of rows over the source columns offset..offset+m, vectorised
    when no per-row top-k is asked for (the same edges in the same order)."""
    if buffer.top_per_target is not None or buffer.wants_rows:
        full = np.zeros((rows.shape[0], n), dtype=rows.dtype)
        full[:, offset : offset + rows.shape[1]] = rows
        buffer.add(source_layer, target_layer, targets, full)
        return
    _emit(buffer, source_layer, target_layer, _candidates(rows, targets, offset, buffer.min_weight))


def closed_form_heads(
    model: nn.Module,
    tokenizer: Any,
    token_ids: Sequence[int],
    objective: Objective,
    *,
    blocks: Sequence[int] | None = None,
    chunk: int = 256,
    checkpoint: bool | None = None,
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> HeadEdges:
    """Head-level edges of the chosen blocks (all by default) from the same single backward
    pass as ``closed_form``: the value, key and query paths of each head kept apart instead of
    summed (SPEC section 7, step 3), plus the residual diagonal."""
    with _session(model, token_ids, objective, split=False, checkpoint=checkpoint) as session:
        chosen = check_blocks(blocks, len(session.blocks))
        n = session.n
        per_block, residuals = [], []
        for done, index in enumerate(chosen):
            attention, tensors, residual = session.layer(index)
            heads = torch.zeros(
                tensors.q.shape[0], n, n, dtype=session.work, device=tensors.q.device
            )
            for start in range(0, n, chunk):
                rows = slice(start, min(start + chunk, n))
                paths, query_path, columns = _layer_rows(attention, tensors, rows, per_head=True)
                diagonal = torch.arange(rows.stop - rows.start, device=paths.device)
                paths[:, diagonal, diagonal + start - columns.start] += query_path
                heads[:, rows, columns] = paths
                del paths
            per_block.append(heads.cpu().numpy())
            residuals.append(residual.double().cpu().numpy())
            del tensors, heads
            progress(done + 1, len(chosen))
        return HeadEdges(
            tokens=tuple(tokenizer.convert_ids_to_tokens(list(token_ids))),
            blocks=tuple(chosen),
            heads=np.stack(per_block) if per_block else np.zeros((0, 0, n, n)),
            residual=np.stack(residuals) if residuals else np.zeros((0, n)),
            source_relevance=session.relevance[list(chosen)],
            meta={"method": "closed", "backward_passes": 1, "chunk": chunk},
        )
