"""The graph cache: full graphs (and their neuron details) on disk, keyed by what they depend on.

An entry is ``<key>.npz`` (the graph's arrays, by the codec in ``types``) and ``<key>.json`` (its
key, the npz's sha256, the metadata and the neuron details). Nothing in an entry is trusted: a
missing, damaged, foreign or tampered entry (bad bytes, wrong shapes, missing keys, another
key's data) is reported in one warning line and recomputed, never fatal."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import secrets
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ..objectives import Objective
from .types import AttributionGraph, npz_bytes

#: bump when the entry layout changes (older entries are then recomputed)
FORMAT = 2


class GraphCacheWarning(UserWarning):
    """A graph-cache entry could not be used and is recomputed."""


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
    a one-line ``GraphCacheWarning`` saying why)."""
    arrays_path, meta_path = _paths(folder, key)
    if not arrays_path.exists() and not meta_path.exists():
        return None
    try:
        return _read(arrays_path, meta_path, key, n_tokens)
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        warnings.warn(
            f"graph cache entry {meta_path.with_suffix('')} is unusable ({reason}); recomputing",
            GraphCacheWarning,
            stacklevel=3,
        )
        return None


def _read(
    arrays_path: Path, meta_path: Path, key: str, n_tokens: int
) -> tuple[AttributionGraph, list[dict[str, Any]]]:
    stored = json.loads(meta_path.read_text(encoding="utf-8"))
    if not isinstance(stored, dict):
        raise ValueError("the metadata is not a JSON object")
    if stored.get("format") != FORMAT:
        raise ValueError(f"entry format {stored.get('format')!r}, expected {FORMAT}")
    if stored.get("key") != key:
        raise ValueError(f"the entry belongs to key {stored.get('key')!r}")
    raw = arrays_path.read_bytes()
    if hashlib.sha256(raw).hexdigest() != stored.get("sha256"):
        raise ValueError("the arrays do not match their checksum")
    with np.load(io.BytesIO(raw), allow_pickle=False) as data:
        if str(data["key"]) != key:
            raise ValueError("the arrays belong to another key")
        meta = stored["meta"]
        if not isinstance(meta, dict):
            raise ValueError("meta is not an object")
        graph = AttributionGraph.from_npz(data, meta)
    if graph.n_tokens != n_tokens:
        raise ValueError(f"{graph.n_tokens} tokens, expected {n_tokens}")
    neurons = stored["neurons_by_node"]
    if not isinstance(neurons, list) or not all(
        isinstance(n, dict) and "layer" in n and "position" in n for n in neurons
    ):
        raise ValueError("neurons_by_node is not a list of node details")
    return graph, neurons


def _writer() -> str:
    """A temporary-file tag no other writer shares: process id plus a random part."""
    return f"{os.getpid()}-{secrets.token_hex(4)}"


def save(
    folder: Path, key: str, graph: AttributionGraph, neurons_by_node: list[dict[str, Any]]
) -> None:
    """Write the entry for ``key`` (each file replaced atomically; the metadata last).

    Two workers can save the same key at once (two cases with the same input, model and
    settings share one graph): each writes its own temporary file, so neither renames the
    other's away from under it. Both entries are the same computation, so either may win."""
    folder.mkdir(parents=True, exist_ok=True)
    arrays_path, meta_path = _paths(folder, key)
    raw = npz_bytes({"key": np.array(key), **graph.to_npz()})
    tmp = folder / f".{key}.{_writer()}.npz.tmp"
    tmp.write_bytes(raw)
    tmp.replace(arrays_path)
    entry = {
        "format": FORMAT,
        "key": key,
        "sha256": hashlib.sha256(raw).hexdigest(),
        "meta": graph.meta,
        "neurons_by_node": neurons_by_node,
    }
    tmp = folder / f".{key}.{_writer()}.json.tmp"
    tmp.write_text(json.dumps(entry), encoding="utf-8")
    tmp.replace(meta_path)
