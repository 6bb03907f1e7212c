"""Edges as they stream out of the closed form, kept sparse and pruned exactly on the way.

``EdgeBuffer`` collects the edge list (a threshold and/or top-k per target row). For long prompts
no layer's n x n edges are held: a chunk of target rows is selected on the torch side
(``ChunkEdges``), and the per-layer cumulative-mass rule is applied exactly while streaming -- a
histogram of |A| brackets the cutoff to one bin, the edges of that bin give it (``MassCut``), and
chunks whose candidates were cut too early are recomputed (``stream_transition``).
docs/method.md section 6."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch

from .types import AttributionGraph


@dataclass
@dataclass
class EdgeBuffer:
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

    def graph(
        self,
        tokens: tuple[str, ...],
        layers: tuple[str, ...],
        relevance: np.ndarray,
        meta: dict[str, Any],
    ) -> AttributionGraph:
        """The graph of the collected edges over these nodes."""
        columns = self.arrays()
        return AttributionGraph(
            tokens=tokens,
            layers=layers,
            node_relevance=relevance,
            edge_source_layer=columns[0],
            edge_target_layer=columns[1],
            edge_source=columns[2],
            edge_target=columns[3],
            edge_weight=columns[4],
            meta=meta,
        )


#: float32 magnitudes binned by their top 16 bits (exponent + 7 mantissa bits): 128 bins per
#: octave, monotone in the magnitude, no range to guess
_BINS = 1 << 15

#: while streaming, a chunk keeps its candidate edges down to this many bins (2 octaves) below
#: the running cumulative-mass cutoff; chunks whose floor ends up above the final cutoff are
#: recomputed in a second pass
_MARGIN_BINS = 256


def bin_of(magnitude: np.ndarray) -> np.ndarray:
    """Bin index of non-negative float32 magnitudes (bit pattern order = value order)."""
    return (magnitude.view(np.int32) >> 16).astype(np.int64)


def candidates(
    rows: np.ndarray, targets: np.ndarray, offset: int, min_weight: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sources, targets, float32 weights) of the edges kept from ``rows`` (float64 [c, m],
    source columns offset..offset+m), in ``EdgeBuffer``'s order: the non-zero ones, or with
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
class MassCut:
    """Exact per-transition cumulative-mass pruning (docs/method.md section 5) without the full edge list.

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
            bins = bin_of(magnitude)
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


def select(
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
    bins = bin_of(magnitude)
    in_bin = np.sort(magnitude[bins == chosen].astype(np.float64))[::-1]
    cumulative = above + np.cumsum(in_bin)
    index = min(int(np.searchsorted(cumulative, goal, side="left")), in_bin.size - 1)
    cutoff = np.float32(in_bin[index])
    keep = (magnitude >= cutoff) & (magnitude > 0)
    order = np.lexsort((sources[keep], targets[keep]))
    return sources[keep][order], targets[keep][order], weights[keep][order]


class ChunkEdges:
    """One chunk's edges (torch [c, m], source columns offset..offset+m) for the active target
    rows, as ``candidates`` selects them, without leaving torch for the full block."""

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


def emit(
    buffer: EdgeBuffer,
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


def add_rows(
    buffer: EdgeBuffer,
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
    emit(buffer, source_layer, target_layer, candidates(rows, targets, offset, buffer.min_weight))


def stream_transition(
    buffer: EdgeBuffer,
    edges_of: Callable[[int], tuple[torch.Tensor, slice]],
    starts: range,
    active: np.ndarray,
    source_layer: int,
    target_layer: int,
    columns_sum: torch.Tensor,
    cumulative_mass: float | None,
) -> int:
    """One transition's edges, chunk by chunk of ``starts.step`` target rows (``edges_of(start)``
    gives a chunk over its source columns), into ``buffer``: those of the ``active`` targets, by
    ``buffer``'s threshold / top-k, or exactly by the cumulative-mass rule with ``p =
    cumulative_mass``. Every chunk's column sums are added to ``columns_sum`` (kept or not).
    Returns how many chunks were recomputed in a second pass."""
    n, chunk = columns_sum.shape[0], starts.step
    cut = MassCut(cumulative_mass) if cumulative_mass is not None else None
    stored: list[tuple[int, list[tuple[np.ndarray, ...]]]] = []  # (floor bin, parts)
    for start in starts:
        edges, columns = edges_of(start)
        columns_sum[columns] += edges.sum(0, dtype=torch.float64)
        keep = active[start : start + chunk]
        if not keep.any():
            stored.append((-1, []))
            continue
        if cut is None and (
            buffer.top_per_target is not None or buffer.wants_rows
        ):  # per-row top-k, or a buffer that records its rows
            targets = np.arange(start, start + keep.size)[keep]
            rows = edges.double().cpu().numpy()[keep]
            add_rows(buffer, source_layer, target_layer, targets, rows, columns.start, n)
            continue
        chunk_edges = ChunkEdges(edges, keep, start, columns.start, buffer.min_weight)
        del edges
        if cut is None:
            emit(buffer, source_layer, target_layer, chunk_edges.take(0))
            continue
        cut.add(*chunk_edges.histogram())
        running = cut.bracket()
        floor = max(running[0] - _MARGIN_BINS, 0) if running is not None else 0
        stored.append((floor, [chunk_edges.take(floor)]))
        del chunk_edges
    recomputed = 0
    if cut is not None:
        final = cut.bracket()
        parts = []
        for start, (floor, kept) in zip(starts, stored, strict=True):
            if final is None or floor <= final[0]:
                parts.extend(kept)
                continue
            recomputed += 1  # the running floor was above the final cutoff bin
            edges, columns = edges_of(start)
            keep = active[start : start + chunk]
            parts.append(
                ChunkEdges(edges, keep, start, columns.start, buffer.min_weight).take(final[0])
            )
            del edges
        del stored
        emit(buffer, source_layer, target_layer, select(parts, final))
        del parts
    return recomputed


def stream_diagonal(
    buffer: EdgeBuffer, layer: int, relevance: np.ndarray, cumulative_mass: float | None
) -> None:
    """The position-wise transition ``layer`` -> ``layer + 1`` (the MLP half of a split block):
    the diagonal ``relevance``, never as n x n, pruned like ``stream_transition``."""
    positions = np.nonzero(relevance != 0)[0]
    if cumulative_mass is None and buffer.wants_rows:
        buffer.add(layer, layer + 1, positions, np.diag(relevance)[positions])
        return
    found = candidates(relevance[positions, None], positions, 0, buffer.min_weight)
    found = (found[1], found[1].copy(), found[2])  # source = target
    if cumulative_mass is not None:
        mass = MassCut(cumulative_mass)
        mass.observe(found[2])
        found = select([found], mass.bracket())
    emit(buffer, layer, layer + 1, found)
