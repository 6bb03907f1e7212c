"""Independent recomputations for the ablation and masking tests (test_interventions,
test_probe): plain forward hooks that record a clean forward's states and replace the chosen
rows in full forwards, with the blocks and embeddings found by hand, not through lxt's table."""

from __future__ import annotations

import torch

#: where each architecture keeps its blocks, written here by hand (not from lxt's table)
BLOCK_PATHS = {"gpt2": "transformer.h", "bert": "bert.encoder.layer"}
EMBEDDINGS = {
    "gpt2": "transformer.wte",
    "bert": "bert.embeddings.word_embeddings",
    "gemma3_text": "model.embed_tokens",
}


def plain_states(model, ids):
    """Every node layer's hidden states of a clean forward: "emb" (first block's input), "b"."""
    blocks = model.get_submodule(BLOCK_PATHS.get(model.config.model_type, "model.layers"))
    states = {}

    def first(output):
        return output[0] if isinstance(output, tuple) else output

    handles = [
        blocks[0].register_forward_pre_hook(
            lambda m, a, k: states.__setitem__("emb", (a[0] if a else k["hidden_states"]).clone()),
            with_kwargs=True,
        )
    ]
    for b, block in enumerate(blocks):
        handles.append(
            block.register_forward_hook(
                lambda m, a, o, b=b: states.__setitem__(str(b), first(o).clone())
            )
        )
    with torch.no_grad():
        model(input_ids=torch.tensor([ids]))
    for h in handles:
        h.remove()
    return states


def reference_logits(model, prompt, sequence, nodes=(), masked=(), baseline="mean"):
    """Last-position logits of ``sequence`` (prompt + generated tokens) in one full forward,
    with each (layer, position) of ``nodes`` replaced by the clean prompt's mean (or zeros) and
    each masked position's input embedding zeroed; only prompt positions are touched."""
    blocks = model.get_submodule(BLOCK_PATHS.get(model.config.model_type, "model.layers"))
    states = plain_states(model, prompt)

    def value(layer):
        state = states[layer][0]
        return state.mean(0) if baseline == "mean" else torch.zeros_like(state[0])

    handles = []
    if masked:
        embed = model.get_submodule(EMBEDDINGS.get(model.config.model_type, "model.embed_tokens"))

        def zero_rows(m, a, o):
            o = o.clone()
            for p in masked:
                o[0, p] = 0.0
            return o

        handles.append(embed.register_forward_hook(zero_rows))
    emb = [p for layer, p in nodes if layer == "emb"]
    if emb:

        def pre(m, a, k):
            h = (a[0] if a else k["hidden_states"]).clone()
            for p in emb:
                h[0, p] = value("emb")
            return ((h, *a[1:]), k) if a else (a, {**k, "hidden_states": h})

        handles.append(blocks[0].register_forward_pre_hook(pre, with_kwargs=True))
    for b, block in enumerate(blocks):
        here = [p for layer, p in nodes if layer == str(b)]
        if here:

            def post(m, a, o, b=b, here=here):
                h = (o[0] if isinstance(o, tuple) else o).clone()
                for p in here:
                    h[0, p] = value(str(b))
                return (h, *o[1:]) if isinstance(o, tuple) else h

            handles.append(block.register_forward_hook(post))
    try:
        with torch.no_grad():
            return model(input_ids=torch.tensor([list(sequence)])).logits[0, -1]
    finally:
        for h in handles:
            h.remove()
