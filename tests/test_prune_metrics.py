"""Pruning and metrics on a hand-drawn graph whose answers are worked out by hand."""

import numpy as np
import pytest

from reportgen.graph.metrics import gini, graph_metrics, mass_hubs
from reportgen.graph.prune import (
    active_nodes,
    connected_subgraph,
    cumulative_mass_cutoff,
    prune,
    prune_cumulative_mass,
    prune_nodes,
    prune_threshold,
)
from reportgen.graph.types import AttributionGraph

#   (source layer, target layer, source pos, target pos, weight)
EDGES = [
    (0, 1, 0, 0, 0.5),
    (0, 1, 1, 1, 0.3),
    (0, 1, 0, 1, 0.1),
    (0, 1, 2, 2, 0.05),
    (0, 1, 1, 2, -0.05),
    (1, 2, 0, 2, 1.0),
    (1, 2, 1, 2, -0.4),
    (1, 2, 2, 2, 0.2),
    (1, 2, 0, 0, 0.01),
]


def hand_graph() -> AttributionGraph:
    columns = list(zip(*EDGES, strict=True))
    return AttributionGraph(
        tokens=("a", "b", "c"),
        layers=("emb", "0", "1"),
        node_relevance=np.array([[0.6, 0.25, 0.0], [0.51, 0.4, 0.25], [0.01, 0.0, 0.8]]),
        edge_source_layer=np.array(columns[0], np.int16),
        edge_target_layer=np.array(columns[1], np.int16),
        edge_source=np.array(columns[2], np.int32),
        edge_target=np.array(columns[3], np.int32),
        edge_weight=np.array(columns[4], np.float32),
    )


def edge_set(graph):
    return {
        (int(a), int(b), int(c), int(d))
        for a, b, c, d in zip(
            graph.edge_source_layer,
            graph.edge_target_layer,
            graph.edge_source,
            graph.edge_target,
            strict=True,
        )
    }


def test_threshold():
    pruned = prune_threshold(hand_graph(), 0.2)
    assert edge_set(pruned) == {(0, 1, 0, 0), (0, 1, 1, 1), (1, 2, 0, 2), (1, 2, 1, 2)}
    assert hand_graph().n_edges == 9  # the input is untouched


def test_cumulative_mass_per_transition():
    assert cumulative_mass_cutoff(np.array([0.5, 0.3, 0.1, 0.05, -0.05]), 0.85) == pytest.approx(
        0.1
    )
    pruned = prune_cumulative_mass(hand_graph(), 0.85)
    assert edge_set(pruned) == {
        (0, 1, 0, 0),
        (0, 1, 1, 1),
        (0, 1, 0, 1),
        (1, 2, 0, 2),
        (1, 2, 1, 2),
    }
    assert edge_set(prune_cumulative_mass(hand_graph(), 1.0)) == edge_set(hand_graph())


def test_connected_subgraph_keeps_paths_to_the_output():
    connected = connected_subgraph(hand_graph())
    # (1,2,0,0) ends at a node that does not reach the output; (0,1,...) into it are dropped too
    assert (1, 2, 0, 0) not in edge_set(connected)
    assert edge_set(connected) == edge_set(hand_graph()) - {(1, 2, 0, 0)}
    pruned = connected_subgraph(prune_threshold(hand_graph(), 0.2))
    assert edge_set(pruned) == {(0, 1, 0, 0), (0, 1, 1, 1), (1, 2, 0, 2), (1, 2, 1, 2)}


def test_node_threshold_and_active_nodes():
    pruned = prune_nodes(hand_graph(), 0.3)
    # nodes above 0.3: (0,0) (1,0) (1,1) (2,2)
    assert edge_set(pruned) == {(0, 1, 0, 0), (0, 1, 0, 1), (1, 2, 0, 2), (1, 2, 1, 2)}
    assert active_nodes(pruned).tolist() == [
        [True, False, False],
        [True, True, False],
        [False, False, True],
    ]


def test_recipe():
    assert edge_set(prune(hand_graph(), "cum_mass", p=0.85)) == {
        (0, 1, 0, 0),
        (0, 1, 1, 1),
        (0, 1, 0, 1),
        (1, 2, 0, 2),
        (1, 2, 1, 2),
    }
    assert edge_set(prune(hand_graph(), "none")) == edge_set(hand_graph())
    assert edge_set(prune(hand_graph(), "threshold", threshold=0.2, node_threshold=0.3)) == {
        (0, 1, 0, 0),
        (1, 2, 0, 2),
        (1, 2, 1, 2),
    }


def test_gini_and_hubs():
    assert gini(np.array([1.0, 1.0, 1.0])) == 0.0
    assert gini(np.array([0.0, 0.0, 1.0])) == pytest.approx(2 / 3)
    assert gini(np.array([0.1, 0.3])) == pytest.approx(0.25)
    assert mass_hubs(np.array([0.5, 0.3, 0.2])) == [0, 1, 2]
    assert mass_hubs(np.array([0.05, 0.9, 0.05])) == [1]
    assert mass_hubs(np.zeros(3)) == []


def test_layer_metrics_by_hand():
    metrics = graph_metrics(prune(hand_graph(), "cum_mass", p=0.85))
    middle = metrics[1]
    assert middle["layer"] == "0"
    assert middle["nodes"] == 2 and middle["edges_in"] == 3 and middle["edges_out"] == 2
    assert middle["edge_node_ratio"] == pytest.approx(1.5)
    assert middle["fan_in"] == pytest.approx(1.5) and middle["fan_out"] == pytest.approx(1.0)
    assert middle["sparsity"] == pytest.approx(1 / 3)
    assert middle["verticality"] == pytest.approx(0.8 / 0.9, rel=1e-6)
    assert middle["local_ratio"] == pytest.approx(2 / 3)
    assert middle["mean_lookback"] == pytest.approx(1 / 3)
    assert middle["gini_in"] == pytest.approx((0.0 + 0.25) / 2)
    assert middle["gini_out"] == 0.0
    assert middle["hubs_90"] == [0, 1, 2]  # 0.51 + 0.4 = 0.91 of 1.16 < 0.9 -> all three
    assert middle["centre_of_mass"] == pytest.approx((0 * 0.51 + 1 * 0.4 + 2 * 0.25) / 1.16)
    top = metrics[2]
    assert top["nodes"] == 1 and top["edges_in"] == 2 and top["verticality"] == 0.0
    assert top["mean_lookback"] == pytest.approx(1.5) and top["hubs_90_pos"] == [2]
