"""Attribution graphs, one module per step (docs/method.md sections 3-7), bottom floor first:

- ``types``: AttributionGraph, HeadEdges and their one codec (JSON, NPZ).
- ``trace``: the one modified backward pass and block replay.
- ``stream``: the edge buffer and exact pruning while edges stream.
- ``packed``: batch-packed backpropagation (the reference) and the per-head reference.
- ``closed_layer``, ``session``, ``closed``, ``closed_heads``: the closed form.
- ``prune``, ``metrics``, ``neurons``: pure functions of a graph.
- ``store``: the graph cache; ``step``: a case's graph step.

Import the module you need (``from reportgen.graph.packed import build_graph``): this package
file imports nothing, so reading a graph never loads torch."""
