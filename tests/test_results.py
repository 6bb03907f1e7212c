"""The result types: importable without torch, and one JSON codec that gives back what it got."""

from __future__ import annotations

import json
import subprocess
import sys

from render_fixtures import make_result, sample_result

from reportgen.results import METRIC_NAMES, CaseResult, Faithfulness, LayerMetrics, NodeNeurons


def test_rendering_imports_no_torch():
    """Rendering sees only plain results: importing every renderer and the result types loads
    neither torch nor lxt nor the model loader, so a cached result renders without them."""
    script = (
        "import pkgutil, sys\n"
        "import reportgen.render, reportgen.results\n"
        "for m in pkgutil.iter_modules(reportgen.render.__path__):\n"
        "    __import__('reportgen.render.' + m.name)\n"
        "print(sorted(m for m in ('torch', 'lxt', 'transformers', 'reportgen.models',\n"
        "    'reportgen.attribution') if m in sys.modules), len(sys.modules) > 100)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "[] True\n"


def test_json_codec_round_trip():
    """``from_json(to_json(r))`` writes the same JSON as ``r``: every field survives, typed."""
    for result in (make_result(), sample_result()):
        text = result.dumps()
        again = CaseResult.from_json(json.loads(text))
        assert again.dumps() == text
        assert again.attribution.target == result.attribution.target
        assert again.attribution.relevance_sum == result.attribution.relevance_sum


def test_neurons_are_typed_and_write_dimensions():
    """The node's hidden dimensions are ``dimensions`` in the type and in JSON (what the graph
    step writes and data.json has); the MLP keys appear only for a node that has MLP neurons."""
    result = make_result()
    (node,) = result.neurons
    assert [(u.index, u.relevance) for u in node.dimensions] == [(17, 0.2), (5, -0.1)]
    data = result.to_json()["neurons"]
    assert data == [
        {
            "layer": "1",
            "position": 3,
            "token": " primary",
            "relevance": 0.42,
            "dimensions": [{"index": 17, "relevance": 0.2}, {"index": 5, "relevance": -0.1}],
        }
    ]
    with_mlp = {**data[0], "mlp_neurons": [{"index": 9, "relevance": 0.5}], "mlp_relevance": 0.7}
    again = NodeNeurons.from_json(with_mlp)
    assert again.mlp_neurons[0].index == 9 and again.mlp_relevance == 0.7
    assert again.to_json() == with_mlp


def test_faithfulness_json_is_the_flat_object_the_flip_test_returns():
    """A long input's flip test (with its compute budget and a failure pattern) and a short
    one's with a note: the typed form writes back exactly the keys and numbers it read."""
    import numpy as np
    from long_render_fixtures import long_faithfulness

    rng = np.random.default_rng(3)
    n = 3_000
    relevance = rng.normal(0, 0.01, n)
    long = long_faithfulness(rng, relevance, [i == 0 for i in range(n)], 1.5)
    typed = Faithfulness.from_json(long)
    assert typed.cost is not None and typed.cost.cost_budget == 32_768
    assert typed.flip_bounds == long["flip_bounds"] == {"gradient": [13, None]}
    assert typed.failure_pattern.token_share == long["failure_pattern"]["token_share"]
    assert json.dumps(typed.to_json(), sort_keys=True) == json.dumps(long, sort_keys=True)
    short = make_result().faithfulness.to_json()
    assert "cost_budget" not in short and "failure_pattern" not in short and "note" not in short
    noted = {**short, "baseline_f": -0.5, "note": "f0 <= 0: nothing to flip"}
    again = Faithfulness.from_json(noted)
    assert again.note == noted["note"] and again.flip_bounds == {}
    assert again.to_json() == noted


def test_layer_metrics_are_what_the_graph_step_computes():
    """Every metric graph.metrics computes is a field of LayerMetrics, in its order, and the
    typed row writes back the same JSON (numbers and lists of positions as computed)."""
    from reportgen.graph.metrics import graph_metrics

    rows = graph_metrics(make_result().graph)
    assert [list(row) for row in rows] == [["layer", *METRIC_NAMES]] * 4
    for row in rows:
        typed = LayerMetrics.from_json(row)
        assert typed.to_json() == row
    # layer "0" of the fixture: one position (2), reached by one edge and leaving by one
    assert LayerMetrics.from_json(rows[1]).nodes == rows[1]["nodes"] == 1
