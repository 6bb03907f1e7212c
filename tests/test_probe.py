"""The live probe of `reportgen explore` (reportgen/probe.py) against an independent
recomputation: plain forward hooks in float64 that replace the ablated states and the masked
embedding rows in full forwards, and a plain greedy loop (no KV cache) that recomputes prompt
+ generated tokens every step with the same replacements held at the prompt positions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from plain_hooks import reference_logits
from tiny_models import tiny_model, tiny_tokenizer

from reportgen.attribution import forward_kwargs
from reportgen.continuations import greedy_ids
from reportgen.interventions import ablate
from reportgen.objectives import Objective
from reportgen.probe import Intervention, probe

# a BOS, then words of the tiny tokenizer (ids 5..30), no other special token
IDS = [1, 5, 7, 9, 11, 13, 20, 22, 8, 17]
OBJECTIVE = Objective("logit_diff", 10, "by_ref_token", 11)


def reference_greedy(model, prompt, tokens, eos, **intervention):
    sequence, new = list(prompt), []
    for _ in range(tokens):
        token = int(reference_logits(model, prompt, sequence, **intervention).argmax())
        new.append(token)
        sequence.append(token)
        if token in eos:
            break
    return new


CASES = [
    ("ablation", {"nodes": (("emb", 3), ("0", 6), ("1", 9))}),
    ("masking", {"masked": (2, 4)}),
    ("both", {"nodes": (("0", 9),), "masked": (5,)}),
]


@pytest.mark.parametrize("arch", ["llama", "gpt2", "gemma3_text"])
@pytest.mark.parametrize(("name", "given"), CASES, ids=[c[0] for c in CASES])
def test_probe_equals_plain_hooks(arch, name, given, one_thread) -> None:
    model = tiny_model(arch, dtype=torch.float64)
    tokenizer = tiny_tokenizer()
    eos = {tokenizer.eos_token_id}
    result = probe(model, tokenizer, IDS, OBJECTIVE, Intervention(**given), tokens=8)
    clean = reference_logits(model, IDS, IDS)
    after = reference_logits(model, IDS, IDS, **given)
    assert result.f_clean == pytest.approx(float(OBJECTIVE.value(clean)), rel=1e-12)
    assert result.f_after == pytest.approx(float(OBJECTIVE.value(after)), rel=1e-10, abs=1e-12)
    assert abs(result.f_after - result.f_clean) > 1e-4  # the intervention does something
    for run, logits in ((result.clean, clean), (result.after, after)):
        order = torch.argsort(logits, descending=True)[:10].tolist()
        assert [t.id for t in run.top] == order
        probs = torch.softmax(logits, -1)
        np.testing.assert_allclose([t.logit for t in run.top], logits[order].numpy(), rtol=1e-10)
        np.testing.assert_allclose([t.prob for t in run.top], probs[order].numpy(), rtol=1e-10)
        assert run.top[0].text == tokenizer.decode([order[0]])
    assert list(result.clean.continuation) == reference_greedy(model, IDS, 8, eos)
    assert list(result.after.continuation) == reference_greedy(model, IDS, 8, eos, **given)
    assert result.after.text == tokenizer.decode(list(result.after.continuation))


def test_zero_baseline_equals_plain_hooks(one_thread) -> None:
    model = tiny_model("qwen2", dtype=torch.float64)
    nodes = (("emb", 2), ("1", 9))
    result = probe(model, tiny_tokenizer(), IDS, OBJECTIVE, Intervention(nodes, "zero"), tokens=0)
    expected = OBJECTIVE.value(reference_logits(model, IDS, IDS, nodes=nodes, baseline="zero"))
    assert result.f_after == pytest.approx(float(expected), rel=1e-10)
    assert result.clean.continuation == result.after.continuation == ()


def test_nothing_equals_the_clean_run_exactly(one_thread) -> None:
    model = tiny_model("llama")  # float32: exact means bit for bit, not within a tolerance
    tokenizer = tiny_tokenizer()
    result = probe(model, tokenizer, IDS, OBJECTIVE, Intervention(), tokens=6)
    assert result.after == result.clean and not result.flips
    # the dossier's clean forward (interventions.ablate) and its logits, bit for bit
    assert result.f_clean == ablate(model, IDS, OBJECTIVE, [[]]).f_clean
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([IDS]), **forward_kwargs(model)).logits[0, -1]
    assert result.f_clean == float(OBJECTIVE.value(logits.double()))
    assert [t.logit for t in result.clean.top] == sorted(logits.double().tolist())[::-1][:10]
    assert list(result.clean.continuation) == greedy_ids(model, tokenizer, IDS, 6)
    # a clean run kept from before is reused as is, and the intervention's numbers are the same
    given = Intervention((("0", 3),), masked=(4,))
    fresh = probe(model, tokenizer, IDS, OBJECTIVE, given, tokens=6)
    assert probe(model, tokenizer, IDS, OBJECTIVE, given, tokens=6, clean=result.clean) == fresh
    # an intervention that is then run leaves no hook behind: the clean run is unchanged
    probe(model, tokenizer, IDS, OBJECTIVE, Intervention((("0", 3),), masked=(4,)), tokens=4)
    assert probe(model, tokenizer, IDS, OBJECTIVE, Intervention(), tokens=6) == result


def test_a_masked_lm_has_no_continuation(one_thread) -> None:
    model = tiny_model("bert", dtype=torch.float64)
    result = probe(model, tiny_tokenizer(), IDS, OBJECTIVE, Intervention(masked=(3,)))
    assert result.clean.continuation is None and result.after.text is None
    after = reference_logits(model, IDS, IDS, masked=(3,))
    assert result.f_after == pytest.approx(float(OBJECTIVE.value(after)), rel=1e-10)


@pytest.mark.parametrize(
    ("intervention", "words"),
    [
        (Intervention((("7", 1),)), "cannot ablate layer '7'"),
        (Intervention((("0.mid", 1),)), "cannot ablate layer '0.mid'"),
        (Intervention((("x", 1),)), "cannot ablate layer 'x'"),
        (Intervention((("0", 10),)), "outside the 10 input tokens"),
        (Intervention((("0", 1), ("0", 1))), "given twice"),
        (Intervention(masked=(10,)), "outside the 10 input tokens"),
        (Intervention(masked=(0,)), "special token"),
        (Intervention(masked=(2, 2)), "given twice"),
        (Intervention((("0", 1),), baseline="resample"), "baseline"),
        (Intervention(masked=(2,), mask="noise"), "mask"),
    ],
)
def test_bad_interventions_are_one_line_errors(intervention, words, one_thread) -> None:
    model = tiny_model("llama", dtype=torch.float64)
    with pytest.raises(ValueError) as caught:
        probe(model, tiny_tokenizer(), IDS, OBJECTIVE, intervention, tokens=2)
    assert words in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.smollm2
def test_probe_on_smollm2_equals_plain_hooks() -> None:
    """The shipped case on SmolLM2 in float32: an ablation at three layers with a masked token,
    against the plain hooks (1e-3 relative), and the first greedy tokens against the plain loop."""
    from pathlib import Path

    from reportgen.cases import load_case
    from reportgen.models import load_model
    from reportgen.pipeline import prepare_question

    case = load_case(Path(__file__).resolve().parent.parent / "cases" / "closest-planet-venus.toml")
    loaded = load_model(case.model)
    prepared = prepare_question(loaded, case.question)
    ids, objective = list(prepared.inputs.token_ids), prepared.objective
    n = len(ids)
    special = set(loaded.tokenizer.all_special_ids)
    masked = next(i for i in range(n - 2, 0, -1) if ids[i] not in special)
    given = {"nodes": (("emb", n - 1), ("12", n - 2), ("20", n - 1)), "masked": (masked,)}
    result = probe(loaded.model, loaded.tokenizer, ids, objective, Intervention(**given), tokens=3)
    after = float(objective.value(reference_logits(loaded.model, ids, ids, **given)))
    scale = max(abs(after), abs(result.f_clean))
    assert abs(result.f_after - after) <= 1e-3 * scale
    assert abs(result.f_after - result.f_clean) > 1e-3 * scale
    eos = {loaded.tokenizer.eos_token_id}
    assert list(result.after.continuation) == reference_greedy(loaded.model, ids, 3, eos, **given)
