"""The case's one plain read of its input (``clean_forward``), shared by the ablations, the
continuations and the flip test: what it holds against the model's own outputs, and that each
stage gives the same numbers from it as from its own read, without reading the input again."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny_models import tiny_model, tiny_tokenizer

import lxt
from reportgen.clean_forward import clean_forward
from reportgen.continuations import case_continuations
from reportgen.faithfulness import faithfulness
from reportgen.interventions import ablate
from reportgen.objectives import Objective

pytestmark = pytest.mark.usefixtures("one_thread")

IDS = [1, 5, 7, 9, 11, 13, 20, 22, 3, 17, 30, 31]
OBJECTIVE = Objective("logit_diff", 10, "by_ref_token", 11)


class Reads:
    """(rows, positions) of every forward through the model's first block (ids or
    embeddings)."""

    def __init__(self, model):
        self.model, self.seen = model, []

    def __enter__(self):
        def hook(module, args, kwargs):
            hidden = args[0] if args else kwargs["hidden_states"]
            self.seen.append(tuple(hidden.shape[:2]))

        first = lxt.decoder_blocks(self.model)[0]
        self.handle = first.register_forward_pre_hook(hook, with_kwargs=True)
        return self.seen

    def __exit__(self, *exc):
        self.handle.remove()


@pytest.mark.parametrize("arch", ["qwen2", "mistral", "gemma3_text"])
def test_it_holds_the_models_own_logits_states_and_means(arch):
    model = tiny_model(arch, dtype=torch.float64)
    clean = clean_forward(model, IDS)
    x = torch.tensor([IDS])
    with torch.no_grad():
        out = model(input_ids=x, output_hidden_states=True, use_cache=True)
    # the LM head on the last position only (logits_to_keep=1): equal to rounding
    torch.testing.assert_close(clean.logits, out.logits[0, -1], rtol=1e-12, atol=1e-12)
    # every position at every layer, a sliding window's early ones too (mistral, gemma3: 4)
    assert len(clean.states) == model.config.num_hidden_layers
    for (keys, values), layer in zip(clean.states, range(len(clean.states)), strict=True):
        assert keys.shape[2] == values.shape[2] == len(IDS), layer
    # node layer -1 is the first block's input, b block b's output (the model's last hidden
    # state has the final norm applied: compare the blocks before it)
    assert sorted(clean.means) == list(range(-1, model.config.num_hidden_layers))
    for layer in range(-1, model.config.num_hidden_layers - 1):
        expected = out.hidden_states[layer + 1][0].mean(0)
        torch.testing.assert_close(clean.means[layer], expected, rtol=0, atol=1e-14)


def test_the_ablations_give_the_same_numbers_from_it_without_a_read_of_their_own():
    model = tiny_model("qwen2", dtype=torch.float64)
    late = [[("emb", 10)], [("0", 11)], [("1", 9), ("0", 10)]]  # all cut from the cache
    own = ablate(model, IDS, OBJECTIVE, late)
    clean = clean_forward(model, IDS)
    with Reads(model) as seen:
        shared = ablate(model, IDS, OBJECTIVE, late, clean=clean)
    assert shared == own
    assert all(positions < len(IDS) for _, positions in seen)  # only the suffixes were run
    zero = ablate(model, IDS, OBJECTIVE, late, baseline="zero", clean=clean)
    assert zero == ablate(model, IDS, OBJECTIVE, late, baseline="zero")
    assert zero.f != shared.f


@pytest.mark.parametrize("arch", ["llama", "gemma3_text"])
def test_the_continuations_decode_from_its_keys_and_values(arch):
    model = tiny_model(arch, dtype=torch.float64)
    tokenizer = tiny_tokenizer()
    own = case_continuations(model, tokenizer, IDS, 10, 11, tokens=12)
    clean = clean_forward(model, IDS)
    with Reads(model) as seen:
        shared = case_continuations(
            model, tokenizer, IDS, 10, 11, tokens=12, prompt_states=clean.states
        )
    assert shared == own and shared.target != shared.contrast
    assert seen[0] == (2, 1)  # the paths' first tokens: the prompt is not read again
    alone = case_continuations(model, tokenizer, IDS, 10, None, tokens=12)
    with Reads(model) as seen:
        single = case_continuations(
            model, tokenizer, IDS, 10, None, tokens=12, prompt_states=clean.states
        )
    assert single == alone and seen[0] == (1, 1)


@pytest.mark.parametrize("arch", ["qwen2", "mistral"])
def test_the_flip_test_reads_the_input_whole_only_for_its_gradient(arch):
    model = tiny_model(arch, dtype=torch.float64)
    relevance = np.linspace(1.0, -1.0, len(IDS)).tolist()
    special = [i == 0 for i in range(len(IDS))]
    with Reads(model) as own_reads:
        own = faithfulness(model, IDS, OBJECTIVE, relevance, special, budget=6)
    clean = clean_forward(model, IDS)
    with Reads(model) as seen:
        shared = faithfulness(model, IDS, OBJECTIVE, relevance, special, budget=6, clean=clean)
    assert shared == own  # every curve, flip-k, AOPC and the token-forwards counted
    whole = (1, len(IDS))
    assert own_reads.count(whole) == 2  # its gradient pass and its own prefix forward
    assert seen.count(whole) == 1  # the gradient pass alone


def test_a_forward_of_another_input_is_refused():
    model = tiny_model("qwen2", dtype=torch.float64)
    clean = clean_forward(model, IDS)
    with pytest.raises(ValueError, match="another input"):
        ablate(model, IDS[:-1], OBJECTIVE, [[("0", 3)]], clean=clean)
    with pytest.raises(ValueError, match="another input"):
        faithfulness(model, IDS[:-1], OBJECTIVE, [0.0] * 11, [False] * 11, budget=3, clean=clean)
