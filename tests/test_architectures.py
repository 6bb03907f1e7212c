"""The architecture table: every entry resolves on its tiny model, and an unknown one fails."""

from __future__ import annotations

import pytest
import torch
from tiny_models import ARCHITECTURES, tiny_model

import lxt
from lxt import decoder_blocks
from reportgen.graph.trace import trace
from reportgen.objectives import Objective

pytestmark = pytest.mark.usefixtures("one_thread")


def test_every_entry_has_a_tiny_model_and_the_reverse():
    assert sorted(lxt.ARCHITECTURES) == ARCHITECTURES
    assert dict(lxt.PATCH_MAPS) == {k: v.patches for k, v in lxt.ARCHITECTURES.items()}


def test_the_table_is_read_only():
    with pytest.raises(TypeError):
        lxt.ARCHITECTURES["new"] = lxt.ARCHITECTURES["llama"]


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_every_fact_resolves_on_the_model(arch):
    model = tiny_model(arch, "sdpa", torch.float64)
    entry = lxt.architecture_of(model)
    assert entry is lxt.ARCHITECTURES[arch]
    blocks = decoder_blocks(model)
    assert len(blocks) == model.config.num_hidden_layers
    for block in blocks:
        for path in (entry.mid_state, entry.residual_sum, entry.neurons):
            assert isinstance(block.get_submodule(path), torch.nn.Module), path
    # the neuron module is the MLP's output projection: its input holds the MLP units
    seen = []
    handle = (
        blocks[0]
        .get_submodule(entry.neurons)
        .register_forward_pre_hook(lambda module, args: seen.append(args[0].shape[-1]))
    )
    with torch.no_grad():
        model(torch.tensor([[3, 15, 27]]))
    handle.remove()
    config = model.config
    width = getattr(config, "intermediate_size", None) or 4 * config.hidden_size  # GPT-2: 4x
    assert seen == [width]
    with lxt.lrp_rules(model) as applied:  # the patch map matches this model
        assert all(count > 0 for count in applied.counts.values())


def test_unknown_architecture_fails_loudly():
    class Config:
        model_type = "not-a-transformer"
        num_hidden_layers = 1

    model = torch.nn.Sequential(torch.nn.ModuleList([torch.nn.Linear(2, 2)]))
    model.config = Config()
    with pytest.raises(lxt.UnsupportedArchitectureError, match="not-a-transformer"):
        lxt.architecture_of(model)
    with pytest.raises(lxt.UnsupportedArchitectureError):
        decoder_blocks(model)
    with pytest.raises(lxt.UnsupportedArchitectureError):
        trace(model, torch.zeros(1, 2, dtype=torch.long), Objective("max_logit", 0), split=False)
