"""The graph cache: the codec round trip, and that a damaged, foreign or tampered entry is
recomputed with a one-line warning (never trusted, never fatal); --no-cache bypasses it; an
unwritable cache costs one warning, never the case."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os

import numpy as np
import pytest
import torch
from tiny_models import tiny_model

from reportgen import cache_files
from reportgen.cases import GraphSettings
from reportgen.graph import step, store
from reportgen.graph.step import compute_graph
from reportgen.graph.types import AttributionGraph, HeadEdges, npz_bytes
from reportgen.models import LoadedModel
from reportgen.objectives import Objective

IDS = (3, 15, 27, 8, 44, 9, 61)
OBJECTIVE = Objective("logit_diff", 5, "by_ref_token", 7)

pytestmark = pytest.mark.usefixtures("one_thread")


def _graph(n: int = 4) -> AttributionGraph:
    rng = np.random.default_rng(0)
    return AttributionGraph(
        tokens=tuple(f"t{i}" for i in range(n)),
        layers=("emb", "0", "1"),
        node_relevance=rng.normal(size=(3, n)),
        edge_source_layer=np.array([0, 0, 1], np.int16),
        edge_target_layer=np.array([1, 1, 2], np.int16),
        edge_source=np.array([0, 1, 2], np.int32),
        edge_target=np.array([1, 1, 3], np.int32),
        edge_weight=np.array([0.5, -0.25, 1.5], np.float32),
        meta={"method": "closed", "exact": True},
    )


NEURONS = [{"layer": "1", "position": 3, "token": "t3", "relevance": 0.5}]


def _same(a: AttributionGraph, b: AttributionGraph) -> None:
    assert a.tokens == b.tokens and a.layers == b.layers and a.meta == b.meta
    for name in ("node_relevance", "edge_source_layer", "edge_target_layer", "edge_source"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
        assert getattr(a, name).dtype == getattr(b, name).dtype
    np.testing.assert_array_equal(a.edge_target, b.edge_target)
    np.testing.assert_array_equal(a.edge_weight, b.edge_weight)


def test_codec_round_trips_json_and_npz():
    graph = _graph()
    again = AttributionGraph.from_json(json.loads(json.dumps(graph.to_json())))
    assert again.to_json() == graph.to_json()
    np.testing.assert_array_equal(again.node_relevance, graph.node_relevance)
    loaded = AttributionGraph.from_npz(graph.to_npz(), graph.meta)
    _same(loaded, graph)
    assert graph.npz_bytes() == _graph().npz_bytes()  # reproducible bytes
    # the readable edges are the JSON form's, in order, as Python numbers
    edges = graph.edges()
    assert [e._asdict() for e in edges] == graph.to_json()["edges"]
    assert len(edges) == graph.n_edges and all(type(e.weight) is float for e in edges)


def test_head_edges_round_trip_npz(tmp_path):
    rng = np.random.default_rng(1)
    edges = HeadEdges(
        tokens=("a", "b", "c"),
        blocks=(0, 2),
        heads=rng.normal(size=(2, 4, 3, 3)),
        residual=rng.normal(size=(2, 3)),
        source_relevance=rng.normal(size=(2, 3)),
        meta={"method": "closed"},
    )
    (tmp_path / "h.npz").write_bytes(npz_bytes(edges.to_npz()))
    with np.load(tmp_path / "h.npz", allow_pickle=False) as data:
        again = HeadEdges.from_npz(data)
    assert (
        again.tokens == edges.tokens and again.blocks == edges.blocks and again.meta == edges.meta
    )
    np.testing.assert_array_equal(again.heads, edges.heads)
    np.testing.assert_array_equal(again.block_edges(1), edges.block_edges(1))
    with pytest.raises(ValueError, match="do not fit"):
        HeadEdges.from_npz({**edges.to_npz(), "residual": np.zeros((1, 3))})


def test_store_round_trip(tmp_path):
    graph = _graph()
    store.save(tmp_path, "k1", graph, NEURONS)
    loaded, neurons = store.load(tmp_path, "k1", graph.n_tokens)
    _same(loaded, graph)
    assert neurons == NEURONS
    assert store.load(tmp_path, "absent", 4) is None  # a miss is silent


def _body(path):
    return json.loads((path).read_text())["body"]


def _reseal(tmp_path, key, change):
    """Change the sealed body of an entry's .json and fix its checksum: a consistent forgery."""
    body = _body(tmp_path / f"{key}.json")
    change(body)
    sealed = cache_files.seal(store.KIND, key, body)
    (tmp_path / f"{key}.json").write_text(json.dumps(sealed))


def _edit(tmp_path, key, change):
    """Change the body of an entry's .json WITHOUT fixing its checksum (a hand edit)."""
    entry = json.loads((tmp_path / f"{key}.json").read_text())
    change(entry["body"])
    (tmp_path / f"{key}.json").write_text(json.dumps(entry))


def _rewrite_arrays(tmp_path, key, **changes):
    """Replace arrays of an entry and fix its checksums: a consistent, well-formed forgery."""
    with np.load(tmp_path / f"{key}.npz", allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    arrays.update(changes)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    raw = npz_bytes(arrays)
    (tmp_path / f"{key}.npz").write_bytes(raw)
    _reseal(
        tmp_path, key, lambda b: b.__setitem__("arrays_sha256", hashlib.sha256(raw).hexdigest())
    )


def _folder_instead(path):
    path.unlink()
    path.mkdir()
    (path / "x").write_text("x")


def _fifo_instead(path):
    path.unlink()
    os.mkfifo(path)


DAMAGES = {
    "garbage arrays": lambda p: (p / "k1.npz").write_bytes(b"\x00garbage" * 10),
    "garbage metadata": lambda p: (p / "k1.json").write_text("{not json"),
    "metadata not an object": lambda p: (p / "k1.json").write_text("[1, 2]"),
    "arrays missing": lambda p: (p / "k1.npz").unlink(),
    "metadata missing": lambda p: (p / "k1.json").unlink(),
    "missing key in metadata": lambda p: _reseal(p, "k1", lambda b: b.pop("meta")),
    "older entry format": lambda p: _reseal(p, "k1", lambda b: b.__setitem__("format", 2)),
    "foreign entry (another key's files)": lambda p: [
        (p / "k1.npz").write_bytes((p / "k2.npz").read_bytes()),
        (p / "k1.json").write_text((p / "k2.json").read_text()),
    ],
    "another key's arrays": lambda p: [
        (p / "k1.npz").write_bytes((p / "k2.npz").read_bytes()),
        _reseal(
            p,
            "k1",
            lambda b: b.__setitem__("arrays_sha256", _body(p / "k2.json")["arrays_sha256"]),
        ),
    ],
    "tampered weights (checksum)": lambda p: (p / "k1.npz").write_bytes(
        (p / "k1.npz").read_bytes()[:-8] + b"\x01" * 8
    ),
    "edited neuron relevance": lambda p: _edit(
        p, "k1", lambda b: b["neurons_by_node"][0].__setitem__("relevance", 777)
    ),
    "edited metadata number": lambda p: _edit(
        p, "k1", lambda b: b["meta"].__setitem__("edges_before_pruning", 99999)
    ),
    "a folder in place of the npz": lambda p: _folder_instead(p / "k1.npz"),
    "a folder in place of the json": lambda p: _folder_instead(p / "k1.json"),
    "a fifo in place of the npz": lambda p: _fifo_instead(p / "k1.npz"),
    "a link in place of the json": lambda p: [
        (p / "k1.json").unlink(),
        (p / "k1.json").symlink_to(p / "k2.json"),
    ],
    "wrong shapes": lambda p: _rewrite_arrays(p, "k1", node_relevance=np.zeros((2, 4))),
    "wrong dtype": lambda p: _rewrite_arrays(p, "k1", edge_source=np.array([0, 1, 2], np.int64)),
    "index out of range": lambda p: _rewrite_arrays(
        p, "k1", edge_target=np.array([1, 1, 9], np.int32)
    ),
    "missing array": lambda p: _rewrite_arrays(p, "k1", edge_weight=None),
    "non-finite": lambda p: _rewrite_arrays(
        p, "k1", edge_weight=np.array([0.5, np.nan, 1.0], np.float32)
    ),
    "bad neuron details": lambda p: _reseal(
        p, "k1", lambda b: b.__setitem__("neurons_by_node", {"a": 1})
    ),
}


def _warnings(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "reportgen"]


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_damaged_entries_are_refused_with_one_warning_line(damage, tmp_path, caplog):
    store.save(tmp_path, "k1", _graph(), NEURONS)
    store.save(tmp_path, "k2", _graph(5), [])
    assert store.load(tmp_path, "k1", 4) is not None  # intact before the damage
    DAMAGES[damage](tmp_path)
    with caplog.at_level(logging.WARNING, logger="reportgen"):
        assert store.load(tmp_path, "k1", 4) is None
    (message,) = _warnings(caplog)
    assert message.startswith("damaged graph cache entry")
    assert "k1" in message and "recomputing" in message and "\n" not in message
    # saving again repairs it, whatever was in the entry's place
    store.save(tmp_path, "k1", _graph(), NEURONS)
    graph, neurons = store.load(tmp_path, "k1", 4)
    _same(graph, _graph())
    assert neurons == NEURONS


def test_wrong_token_count_is_refused(tmp_path, caplog):
    store.save(tmp_path, "k1", _graph(), NEURONS)
    with caplog.at_level(logging.WARNING, logger="reportgen"):
        assert store.load(tmp_path, "k1", 6) is None
    assert any("4 tokens, expected 6" in m for m in _warnings(caplog))


class _Tokenizer:
    def convert_ids_to_tokens(self, ids):
        return [f"w{i}" for i in ids]


def _loaded() -> LoadedModel:
    model = tiny_model("llama", "sdpa", torch.float64)
    return LoadedModel("tiny", model, _Tokenizer(), "test", None, "cpu", "float64")


def _compute(loaded, use_cache=True):
    return compute_graph(
        loaded,
        IDS,
        OBJECTIVE,
        GraphSettings(),
        model_identity="tiny-llama",
        code="test",
        use_cache=use_cache,
    )


def test_step_recomputes_damaged_entries_and_no_cache_bypasses(monkeypatch, tmp_path, caplog):
    monkeypatch.setattr(step, "cache_dir", lambda: tmp_path)  # a graph cache of this test alone
    loaded = _loaded()
    first = _compute(loaded)
    folder = tmp_path / "graphs"
    (entry,) = folder.glob("*.json")
    key = entry.stem
    # a cache hit gives the same graph
    _same(_compute(loaded).full, first.full)
    # garbage: recomputed (same numbers), with a warning, and the entry is repaired
    (folder / f"{key}.npz").write_bytes(b"garbage")
    with caplog.at_level(logging.WARNING, logger="reportgen"):
        again = _compute(loaded)
    assert len(_warnings(caplog)) == 1 and "recomputing" in _warnings(caplog)[0]
    _same(again.full, first.full)
    assert again.metrics == first.metrics and again.neurons == first.neurons
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="reportgen"):
        _same(_compute(loaded).full, first.full)  # repaired: no warning now
    assert _warnings(caplog) == []
    # a folder in the place of the arrays: recomputed, and the entry is repaired
    _folder_instead(folder / f"{key}.npz")
    with caplog.at_level(logging.WARNING, logger="reportgen"):
        _same(_compute(loaded).full, first.full)
    assert (folder / f"{key}.npz").is_file()
    # the neuron details a dossier shows, edited in the .json: detected, not published
    caplog.clear()
    _edit(folder, key, lambda b: b["neurons_by_node"][0].__setitem__("relevance", 777.0))
    with caplog.at_level(logging.WARNING, logger="reportgen"):
        again = _compute(loaded)
    assert again.neurons == first.neurons and len(_warnings(caplog)) == 1
    # a well-formed entry with other numbers is what the cache holds; --no-cache ignores it
    forged = dataclasses.replace(first.full, edge_weight=first.full.edge_weight * 2)
    store.save(folder, key, forged, [])
    np.testing.assert_array_equal(_compute(loaded).full.edge_weight, forged.edge_weight)
    fresh = _compute(loaded, use_cache=False)
    _same(fresh.full, first.full)


def test_two_writers_of_one_key_do_not_take_each_others_file(monkeypatch, tmp_path):
    """A second save of the same key lands while the first is between writing its temporary
    file and renaming it (two workers on two cases that share a graph): both succeed and the
    entry reads back."""
    graph, key = _graph(), "k" * 24
    replace = os.replace
    nested = []

    def let_the_other_writer_in_then_replace(src, dst):
        if not nested:
            nested.append(str(src))
            store.save(tmp_path, key, graph, [])  # the other worker, start to end
        return replace(src, dst)

    monkeypatch.setattr(cache_files.os, "replace", let_the_other_writer_in_then_replace)
    store.save(tmp_path, key, graph, [])
    assert nested  # the other writer did run in between
    monkeypatch.undo()
    loaded, _ = store.load(tmp_path, key, graph.n_tokens)
    _same(loaded, graph)
    assert not list(tmp_path.glob(".*.tmp"))


def test_an_unwritable_graph_cache_costs_one_warning_not_the_case(monkeypatch, tmp_path, caplog):
    """Issue 31: a full disk (ENOSPC) or read-only cache: the graph is still computed, one
    warning line in all, no temporary left behind."""
    monkeypatch.setattr(step, "cache_dir", lambda: tmp_path)
    monkeypatch.setenv("REPORTGEN_CACHE", str(tmp_path))
    monkeypatch.setattr(cache_files, "_unwritable", set())
    real_open = open

    def full_disk(path, mode="r", *args, **kwargs):
        if "x" in mode and str(path).endswith(".tmp"):
            raise OSError(28, "No space left on device", str(path))
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr("builtins.open", full_disk)
    loaded = _loaded()
    with caplog.at_level(logging.WARNING, logger="reportgen"):
        first = _compute(loaded)
        second = _compute(loaded)  # nothing stored: computed again, no second warning
    _same(first.full, second.full)
    (message,) = _warnings(caplog)
    assert message.startswith(f"the cache {tmp_path} cannot be written (no space left")
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]  # nothing half-written
