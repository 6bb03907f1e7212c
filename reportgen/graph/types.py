"""The graph's type and its one codec: ``AttributionGraph`` and ``HeadEdges``.

The bottom floor of the graph package: numpy only, no model, no torch. Everything that stores or
sends a graph (the graph cache, ``reportgen graph``, the dossier downloads, ``CaseResult``) goes
through ``to_json``/``from_json`` and ``to_npz``/``from_npz`` here. Nodes and edges:
docs/method.md section 3."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

import numpy as np


class Edge(NamedTuple):
    """One edge in readable form: layer ids, token positions and the weight as Python numbers
    (what a renderer reads; the graph itself keeps the arrays)."""

    source_layer: str
    target_layer: str
    source: int
    target: int
    weight: float


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

    def edges(self) -> list[Edge]:
        """The edges in readable form, in their stored order (built on each call: a renderer
        that reads them more than once keeps the list)."""
        layers = self.layers
        return [
            Edge(layers[sl], layers[tl], s, t, w)
            for sl, tl, s, t, w in zip(
                self.edge_source_layer.tolist(),
                self.edge_target_layer.tolist(),
                self.edge_source.tolist(),
                self.edge_target.tolist(),
                self.edge_weight.tolist(),
                strict=True,
            )
        ]

    def transitions(self) -> list[tuple[int, int]]:
        """(source layer index, target layer index) of each consecutive node-layer pair."""
        return [(i, i + 1) for i in range(len(self.layers) - 1)]

    def dense(self, source_layer: int) -> np.ndarray:
        """Edge matrix A[j, i] of the transition starting at ``source_layer`` (for tests/small n)."""
        matrix = np.zeros((self.n_tokens, self.n_tokens), dtype=np.float64)
        mask = self.edge_source_layer == source_layer
        np.add.at(matrix, (self.edge_target[mask], self.edge_source[mask]), self.edge_weight[mask])
        return matrix

    def with_meta(self, **meta: Any) -> AttributionGraph:
        """The same graph with ``meta`` added to its metadata."""
        return replace(self, meta={**self.meta, **meta})

    # --- the codec: the one JSON and NPZ form of a graph (cache, CLI, dossier, CaseResult) ---

    def to_json(self) -> dict[str, Any]:
        """Plain JSON: tokens, layer ids, node relevance per layer, edges as dicts, meta."""
        return {
            "tokens": list(self.tokens),
            "layers": list(self.layers),
            "node_relevance": [[float(v) for v in row] for row in self.node_relevance],
            "edges": [edge._asdict() for edge in self.edges()],
            "meta": dict(self.meta),
        }

    def to_npz(self) -> dict[str, np.ndarray]:
        """The arrays (no pickles, no meta) for ``np.savez``; weights in float32."""
        return {
            "tokens": np.array(self.tokens, dtype=str),
            "layers": np.array(self.layers, dtype=str),
            "node_relevance": self.node_relevance,
            "edge_source_layer": self.edge_source_layer,
            "edge_target_layer": self.edge_target_layer,
            "edge_source": self.edge_source,
            "edge_target": self.edge_target,
            "edge_weight": self.edge_weight.astype(np.float32),  # as computed
        }

    def npz_bytes(self) -> bytes:
        """``to_npz`` as the bytes of an .npz file: no pickles (``np.load(allow_pickle=False)``
        reads it) and fixed zip timestamps, so the same graph gives the same bytes."""
        return npz_bytes(self.to_npz())

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AttributionGraph:
        """The inverse of ``to_json`` (float32 weights and float64 relevance come back exact);
        a malformed dict raises ``ValueError``."""
        try:
            layers = [str(layer) for layer in data["layers"]]
            index = {name: i for i, name in enumerate(layers)}
            edges = data["edges"]
            arrays = {
                "tokens": [str(token) for token in data["tokens"]],
                "layers": layers,
                "node_relevance": np.array(data["node_relevance"], dtype=np.float64),
                "edge_source_layer": np.array([index[e["source_layer"]] for e in edges], np.int16),
                "edge_target_layer": np.array([index[e["target_layer"]] for e in edges], np.int16),
                "edge_source": np.array([e["source"] for e in edges], dtype=np.int32),
                "edge_target": np.array([e["target"] for e in edges], dtype=np.int32),
                # JSON numbers are float64: kept as they are (a computed graph's float32 weights
                # come back exactly, and hand-written ones are not rounded)
                "edge_weight": np.array([e["weight"] for e in edges], dtype=np.float64),
            }
            meta = dict(data.get("meta") or {})
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"not a graph in JSON form: {error!r}") from None
        return cls.from_npz(arrays, meta)

    @classmethod
    def from_npz(cls, arrays: Mapping[str, np.ndarray], meta: dict[str, Any]) -> AttributionGraph:
        """The inverse of ``to_npz`` (with the metadata kept beside it); wrong or missing arrays
        raise ``ValueError``."""
        try:
            graph = cls(
                tokens=tuple(str(token) for token in arrays["tokens"]),
                layers=tuple(str(layer) for layer in arrays["layers"]),
                node_relevance=np.asarray(arrays["node_relevance"]),
                edge_source_layer=np.asarray(arrays["edge_source_layer"]),
                edge_target_layer=np.asarray(arrays["edge_target_layer"]),
                edge_source=np.asarray(arrays["edge_source"]),
                edge_target=np.asarray(arrays["edge_target"]),
                edge_weight=np.asarray(arrays["edge_weight"]),
                meta=dict(meta),
            )
        except KeyError as error:
            raise ValueError(f"graph arrays: missing {error}") from None
        graph.check()
        return graph

    def check(self) -> None:
        """Raise ``ValueError`` unless the arrays fit together: relevance [layers, tokens], five
        edge columns of one length with their dtypes, every index in range, finite numbers."""
        shape = (len(self.layers), len(self.tokens))
        if self.node_relevance.shape != shape or self.node_relevance.dtype != np.float64:
            raise ValueError(
                f"node_relevance is {self.node_relevance.dtype}{list(self.node_relevance.shape)},"
                f" expected float64{list(shape)}"
            )
        columns = {
            "edge_source_layer": (self.edge_source_layer, np.int16, len(self.layers)),
            "edge_target_layer": (self.edge_target_layer, np.int16, len(self.layers)),
            "edge_source": (self.edge_source, np.int32, len(self.tokens)),
            "edge_target": (self.edge_target, np.int32, len(self.tokens)),
            "edge_weight": (self.edge_weight, self.edge_weight.dtype, None),
        }
        if self.edge_weight.dtype not in (np.float32, np.float64):
            raise ValueError(f"edge_weight is {self.edge_weight.dtype}, expected float32")
        count = self.edge_weight.shape[0] if self.edge_weight.ndim == 1 else -1
        for name, (array, dtype, bound) in columns.items():
            if array.ndim != 1 or array.shape[0] != count or array.dtype != dtype:
                raise ValueError(
                    f"{name} is {array.dtype}{list(array.shape)}, expected {np.dtype(dtype)}[{count}]"
                )
            if bound is not None and array.size and (array.min() < 0 or array.max() >= bound):
                raise ValueError(f"{name} holds an index outside 0..{bound - 1}")
        if not (np.isfinite(self.node_relevance).all() and np.isfinite(self.edge_weight).all()):
            raise ValueError("the graph holds non-finite numbers")


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
        """The arrays for ``np.savez`` (the method kept as a 0-d string)."""
        return {
            "tokens": np.array(self.tokens, dtype=str),
            "blocks": np.array(self.blocks, dtype=np.int32),
            "heads": self.heads,
            "residual": self.residual,
            "source_relevance": self.source_relevance,
            "method": np.array(self.meta.get("method", "")),
        }

    @classmethod
    def from_npz(cls, arrays: Mapping[str, np.ndarray]) -> HeadEdges:
        """The inverse of ``to_npz``; missing or mis-shaped arrays raise ``ValueError``."""
        try:
            edges = cls(
                tokens=tuple(str(token) for token in arrays["tokens"]),
                blocks=tuple(int(block) for block in arrays["blocks"]),
                heads=np.asarray(arrays["heads"]),
                residual=np.asarray(arrays["residual"]),
                source_relevance=np.asarray(arrays["source_relevance"]),
                meta={"method": str(arrays["method"])},
            )
        except KeyError as error:
            raise ValueError(f"head-edge arrays: missing {error}") from None
        n, count = len(edges.tokens), len(edges.blocks)
        if (
            edges.heads.ndim != 4
            or edges.heads.shape[0] != count
            or edges.heads.shape[2:] != (n, n)
            or edges.residual.shape != (count, n)
            or edges.source_relevance.shape != (count, n)
        ):
            raise ValueError("head-edge arrays do not fit together")
        return edges


def edge_meta(
    method: str,
    *,
    split: bool,
    passes: int,
    skipped: int,
    node_threshold: float,
    min_edge_weight: float,
    top_per_target: int | None,
    explained: float,
    exact_note: str,
    skipped_word: str,
    cumulative_mass: float | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The metadata every edge method writes: how the edges were made and whether they are the
    whole, exact graph (no threshold, no top-k, no pruning while streaming)."""
    return {
        "method": method,
        "split": split,
        "backward_passes": passes,
        "skipped_targets": skipped,
        "node_threshold": node_threshold,
        "min_edge_weight": min_edge_weight,
        "top_per_target": top_per_target,
        "explained": explained,
        "exact": node_threshold == 0.0
        and min_edge_weight == 0.0
        and top_per_target is None
        and cumulative_mass is None,
        "note": exact_note
        if node_threshold == 0.0
        else f"targets with |R| <= {node_threshold} were {skipped_word}: column sums are approximate",
        **extra,
    }


#: a member this large is written with zip64 sizes (the plain header cannot hold 4 GiB; the
#: size of a streamed member is not known when its header is written)
ZIP64_FROM = 1 << 30


def npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    """An .npz archive of ``arrays`` (deflated, no pickles, fixed timestamps: reproducible)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            # streamed into the archive: no uncompressed copy of a long input's edge arrays
            with archive.open(info, "w", force_zip64=array.nbytes > ZIP64_FROM) as member:
                np.save(member, array, allow_pickle=False)
    return buffer.getvalue()
