"""The graph cache: full graphs (and their neuron details) on disk, keyed by what they depend on.

An entry is ``<key>.npz`` (the graph's arrays, by the codec in ``types``) and ``<key>.json``, a
sealed envelope (:mod:`reportgen.cache_files`) holding the npz's sha256, the metadata and the
neuron details under one checksum: an edited number in either file is detected. Nothing in an
entry is trusted: a missing, damaged, foreign or tampered entry (bad bytes, wrong shapes, missing
keys, another key's data, a folder or FIFO in a file's place) is reported in one ``warning:``
line and recomputed, never fatal; a cache that cannot be written is skipped (one warning)."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .. import cache_files
from ..errors import warn
from ..objectives import Objective
from .types import AttributionGraph, npz_bytes

#: bump when the entry layout changes (older entries are then recomputed)
FORMAT = 3
KIND = "reportgen-graph"


def graph_key(
    model_identity: str,
    token_ids: tuple[int, ...],
    objective: Objective,
    split: bool,
    node_threshold: float,
    code: str,
    layers: list[int] | None = None,
) -> str:
    """The cache key: everything the full graph's numbers depend on."""
    payload = json.dumps(
        {
            "model": model_identity,
            "tokens": list(token_ids),
            "objective": dataclasses.asdict(objective),
            "layers": layers if layers is not None else "all",
            "split": split,
            "node_threshold": node_threshold,
            "code": code,
        },
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


def _paths(folder: Path, key: str) -> tuple[Path, Path]:
    return folder / f"{key}.npz", folder / f"{key}.json"


def load(
    folder: Path, key: str, n_tokens: int
) -> tuple[AttributionGraph, list[dict[str, Any]]] | None:
    """The cached (graph, neuron details) for ``key``, or None when absent or unusable (then with
    a one-line warning saying why)."""
    arrays_path, meta_path = _paths(folder, key)
    present = [p for p in (arrays_path, meta_path) if p.exists() or p.is_symlink()]
    if not present:
        return None
    try:
        return _read(arrays_path, meta_path, key, n_tokens)
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as error:
        if isinstance(error, OSError) and error.strerror:
            reason = error.strerror
        else:
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        warn(f"damaged graph cache entry {meta_path.with_suffix('')} ({reason[:120]}); recomputing")
        return None


def _read(
    arrays_path: Path, meta_path: Path, key: str, n_tokens: int
) -> tuple[AttributionGraph, list[dict[str, Any]]]:
    body = cache_files.read_sealed(meta_path, KIND, key)
    if not isinstance(body, dict):
        raise ValueError("the metadata is not a JSON object")
    if body.get("format") != FORMAT:
        raise ValueError(f"entry format {body.get('format')!r}, expected {FORMAT}")
    raw = cache_files.read_regular(arrays_path)
    if hashlib.sha256(raw).hexdigest() != body.get("arrays_sha256"):
        raise ValueError("the arrays do not match their checksum")
    with np.load(io.BytesIO(raw), allow_pickle=False) as data:
        if str(data["key"]) != key:
            raise ValueError("the arrays belong to another key")
        meta = body["meta"]
        if not isinstance(meta, dict):
            raise ValueError("meta is not an object")
        graph = AttributionGraph.from_npz(data, meta)
    if graph.n_tokens != n_tokens:
        raise ValueError(f"{graph.n_tokens} tokens, expected {n_tokens}")
    neurons = body["neurons_by_node"]
    if not isinstance(neurons, list) or not all(
        isinstance(n, dict) and "layer" in n and "position" in n for n in neurons
    ):
        raise ValueError("neurons_by_node is not a list of node details")
    return graph, neurons


def entry_body(raw: bytes, graph: AttributionGraph, neurons_by_node: list[dict[str, Any]]) -> dict:
    """What the sealed ``.json`` of an entry holds (its checksum covers all of it)."""
    return {
        "format": FORMAT,
        "arrays_sha256": hashlib.sha256(raw).hexdigest(),
        "meta": graph.meta,
        "neurons_by_node": neurons_by_node,
    }


def save(
    folder: Path, key: str, graph: AttributionGraph, neurons_by_node: list[dict[str, Any]]
) -> None:
    """Write the entry for ``key`` (each file replaced atomically; the metadata last). A cache
    that cannot be written costs one warning per process, never the case.

    Two workers can save the same key at once (two cases with the same input, model and
    settings share one graph): each writes its own temporary file, so neither renames the
    other's away from under it. Both entries are the same computation, so either may win."""
    arrays_path, meta_path = _paths(folder, key)
    raw = npz_bytes({"key": np.array(key), **graph.to_npz()})
    if cache_files.write_atomic(arrays_path, raw, within=folder):
        body = json.loads(json.dumps(entry_body(raw, graph, neurons_by_node)))  # as read back
        cache_files.write_sealed(meta_path, KIND, key, body, within=folder)
