"""Head-level edges in closed form: the value, key and query paths of each head kept apart."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from ..objectives import Objective
from .closed_layer import layer_rows
from .session import open_session
from .trace import check_blocks, token_strings
from .types import HeadEdges


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
    summed (docs/method.md section 4), plus the residual diagonal."""
    with open_session(model, token_ids, objective, split=False, checkpoint=checkpoint) as session:
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
                paths, query_path, columns = layer_rows(attention, tensors, rows, per_head=True)
                diagonal = torch.arange(rows.stop - rows.start, device=paths.device)
                paths[:, diagonal, diagonal + start - columns.start] += query_path
                heads[:, rows, columns] = paths
                del paths
            per_block.append(heads.cpu().numpy())
            residuals.append(residual.double().cpu().numpy())
            del tensors, heads
            progress(done + 1, len(chosen))
        return HeadEdges(
            tokens=token_strings(tokenizer, token_ids),
            blocks=tuple(chosen),
            heads=np.stack(per_block) if per_block else np.zeros((0, 0, n, n)),
            residual=np.stack(residuals) if residuals else np.zeros((0, n)),
            source_relevance=session.relevance[list(chosen)],
            meta={"method": "closed", "backward_passes": 1, "chunk": chunk},
        )
