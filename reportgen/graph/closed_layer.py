"""The closed form of one layer: every edge of a block from attention-sized products.

For a block s -> t with head outputs' gradient u, attention weights a and the parts q°, k°, v° of
the queries, keys and values linear in h_s (docs/method.md section 4), summed over heads:

- value path  E^v[j,i] = s_v a[j,i] <u_j, v°_i>
- key path    E^k[j,i] = s_qk a[j,i] (<u_j,v_i> - sum_m a[j,m] <u_j,v_m>) <q_j, k°_i> * scale
- query path  E^q[j,j] = s_qk sum_l a[j,l] (<u_j,v_l> - sum_m a[j,m] <u_j,v_m>) <k_l, q°_j> * scale
- residual    R^res[j] = <g_res[j], h_s[j]>

with s_v = 1/2, s_qk = 1/4 the uniform-rule shares lxt applies to the projection outputs (``u``
is taken after the attention function, upstream of those shares, so they are applied here once).
Target rows come in chunks over only the source columns they can attend to."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lxt.patches import QK_SHARE, V_SHARE


@dataclass
@dataclass
class AttentionCall:
    """What one attention call saw (batch of one), captured in the traced forward pass."""

    query: torch.Tensor  # [heads, n, d] (rotated)
    key: torch.Tensor  # [kv heads, n, d]
    value: torch.Tensor  # [kv heads, n, d_v]
    mask: torch.Tensor | None  # [1 or heads, n, n], bool (True = attend) or additive float
    causal: bool  # only used when mask is None
    scaling: float
    shape: tuple[int, ...]  # of the output [1, n, heads, d_v]
    grad: torch.Tensor | None = None  # the output's gradient, set by a hook in the backward


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """[kv heads, n, d] -> [heads, n, d] (GQA: each kv head serves consecutive query heads)."""
    if x.shape[0] == heads:
        return x
    return x.repeat_interleave(heads // x.shape[0], dim=0)


@dataclass
class LayerTensors:
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


def layer_tensors(
    attention: AttentionCall, tangents: tuple[torch.Tensor | None, ...], dtype: torch.dtype
) -> LayerTensors:
    """The per-head tensors of one layer from its attention call and the tangents (q°, k°, v°)
    of the forward-mode replay."""
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
    return LayerTensors(
        q=attention.query.to(dtype),
        k=_heads(attention.key.to(dtype), heads),
        v=_heads(attention.value.to(dtype), heads),
        q_lin=parts[0],
        k_lin=parts[1],
        v_lin=parts[2],
        u=grad[0].transpose(0, 1).to(dtype),
    )


def _columns(attention: AttentionCall, rows: slice, n: int) -> slice:
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
    attention: AttentionCall, rows: slice, columns: slice, device: torch.device
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
    attention: AttentionCall, layer: LayerTensors, rows: slice, columns: slice
) -> tuple[torch.Tensor, torch.Tensor]:
    """``layer_rows`` for bias-free projections (q° = q, k° = k, v° = v) and no explicit mask
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


def layer_rows(
    attention: AttentionCall, layer: LayerTensors, rows: slice, *, per_head: bool = False
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


def chunk_edges(
    attention: AttentionCall, layer: LayerTensors, residual: torch.Tensor, start: int, chunk: int
) -> tuple[torch.Tensor, slice]:
    """All edges E[j, i] of the targets start..start+chunk over the source ``columns``."""
    rows = slice(start, min(start + chunk, residual.shape[0]))
    edges, diagonal, columns = layer_rows(attention, layer, rows)
    index = torch.arange(rows.stop - rows.start, device=edges.device)
    edges[index, index + start - columns.start] += diagonal + residual[rows]
    return edges, columns
