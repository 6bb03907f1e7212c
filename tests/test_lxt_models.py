"""lxt on tiny random models of every supported architecture."""

import math

import pytest
import torch
from tiny_models import ARCHITECTURES, tiny_model

import lxt

IDS = torch.tensor([[3, 15, 27, 8, 44, 9, 61, 12, 5]])


def relevance(model, ids=IDS, target=5, contrast=7, lrp=True):
    context = lxt.lrp_rules(model) if lrp else torch.enable_grad()
    with context:
        emb = model.get_input_embeddings()(ids).detach().requires_grad_(True)
        logits = model(inputs_embeds=emb).logits[0, -1]
        f = logits[target] - logits[contrast]
        (g,) = torch.autograd.grad(f, emb)
    return (emb * g).sum(-1)[0], f.detach(), logits.detach()


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_sdpa_equals_eager_and_forward_unchanged(arch):
    sdpa = tiny_model(arch, "sdpa")
    eager = tiny_model(arch, "eager")
    r_sdpa, f_sdpa, logits = relevance(sdpa)
    r_eager, f_eager, _ = relevance(eager)
    assert torch.isfinite(r_sdpa).all()
    assert r_sdpa.abs().sum() > 1e-6
    torch.testing.assert_close(r_sdpa, r_eager, atol=1e-4, rtol=1e-4)
    with torch.no_grad():
        reference = sdpa(input_ids=IDS).logits[0, -1]
    # the rules change only the backward pass
    torch.testing.assert_close(logits, reference, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(f_sdpa, reference[5] - reference[7], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_rules_change_the_gradient_and_unpatch_restores_it(arch):
    model = tiny_model(arch, "sdpa", torch.float64)
    plain_before, _, _ = relevance(model, lrp=False)
    lrp, _, _ = relevance(model)
    plain_after, _, _ = relevance(model, lrp=False)
    assert not lxt.is_patched(model)
    torch.testing.assert_close(plain_before, plain_after, atol=0, rtol=0)
    assert (lrp - plain_before).abs().max() > 1e-8


@pytest.mark.parametrize("arch", ["llama", "gemma3_text", "gpt2"])
def test_contrast_equal_target_gives_zero_relevance(arch):
    model = tiny_model(arch, "sdpa", torch.float64)
    r, f, _ = relevance(model, target=11, contrast=11)
    assert f.item() == 0.0
    assert r.abs().max().item() == 0.0


def test_unknown_architecture_fails_loudly():
    model = torch.nn.Linear(2, 2)
    with pytest.raises(lxt.UnsupportedArchitectureError):
        lxt.patch(model)

    class Config:
        model_type = "mamba"

    model.config = Config()
    with pytest.raises(lxt.UnsupportedArchitectureError, match="mamba"):
        lxt.patch(model)


def test_selector_matching_nothing_fails_and_leaves_no_hooks():
    model = tiny_model("llama")
    broken = {**lxt.PATCH_MAPS["llama"], "*.mlp.renamed_act": lxt.IdentityRule()}
    with pytest.raises(lxt.PatchMismatchError, match="renamed_act"):
        lxt.patch(model, broken)
    assert not lxt.is_patched(model)
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_double_patch_is_refused():
    model = tiny_model("llama")
    with lxt.lrp_rules(model):
        with pytest.raises(RuntimeError, match="already patched"):
            lxt.patch(model)
    assert all(not m._forward_hooks for m in model.modules())


def test_patch_maps_are_read_only():
    with pytest.raises(TypeError):
        lxt.PATCH_MAPS["new"] = {}


def _reference_llama_relevance(model, ids, target, contrast):
    """AttnLRP for a Llama, written out by hand in float64 with detach tricks instead of hooks:
    an independent implementation of docs/method.md section 2 to check the patched model against."""
    cfg = model.config
    heads, kv_heads = cfg.num_attention_heads, cfg.num_key_value_heads
    hd = cfg.hidden_size // heads
    n = ids.shape[1]

    def share(x, s):  # value unchanged, gradient scaled by s
        return s * x + (1 - s) * x.detach()

    def rms(x, norm):
        return (
            norm.weight
            * x
            / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + norm.variance_epsilon).detach()
        )

    def rope(x, cos, sin):
        x1, x2 = x[..., : hd // 2], x[..., hd // 2 :]
        return x * cos + torch.cat([-x2, x1], -1) * sin

    emb = model.model.embed_tokens(ids).detach().requires_grad_(True)
    cos, sin = model.model.rotary_emb(emb, torch.arange(n)[None])
    cos, sin = cos[:, None], sin[:, None]
    mask = torch.full((n, n), -math.inf, dtype=emb.dtype).triu(1)
    h = emb
    for layer in model.model.layers:
        a = layer.self_attn
        x = rms(h, layer.input_layernorm)
        q = share(a.q_proj(x), 0.25).view(1, n, heads, hd).transpose(1, 2)
        k = share(a.k_proj(x), 0.25).view(1, n, kv_heads, hd).transpose(1, 2)
        v = share(a.v_proj(x), 0.5).view(1, n, kv_heads, hd).transpose(1, 2)
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        k = k.repeat_interleave(heads // kv_heads, 1)
        v = v.repeat_interleave(heads // kv_heads, 1)
        weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd) + mask, -1)
        h = h + a.o_proj((weights @ v).transpose(1, 2).reshape(1, n, -1))
        x = rms(h, layer.post_attention_layernorm)
        gate = layer.mlp.gate_proj(x)
        stabilised = gate + 1e-10 * torch.where(gate >= 0, 1.0, -1.0).to(gate.dtype)
        act = gate * (torch.nn.functional.silu(gate) / stabilised).detach()
        h = h + layer.mlp.down_proj(share(act * layer.mlp.up_proj(x), 0.5))
    logits = model.lm_head(rms(h, model.model.norm))[0, -1]
    f = logits[target] - logits[contrast]
    (g,) = torch.autograd.grad(f, emb)
    return (emb * g).sum(-1)[0]


def test_llama_matches_hand_written_float64_reference():
    # sdpa: eager attention computes its softmax in float32, which would blur a float64 check
    model = tiny_model("llama", "sdpa", torch.float64)
    model.config.attention_bias = False
    for layer in model.model.layers:
        for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj):
            proj.bias = None
    expected = _reference_llama_relevance(model, IDS, 5, 7)
    got, _, _ = relevance(model)
    torch.testing.assert_close(got, expected, atol=1e-10, rtol=1e-8)


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("lrp", [True, False])
def test_recomputed_blocks_give_the_same_gradient(monkeypatch, arch, lrp):
    """Long inputs recompute each block in the backward (attribution.recomputed_blocks): the
    relevance must be the one kept activations give, with every rule's hooks firing again."""
    from reportgen import attribution
    from reportgen.objectives import Objective

    model = tiny_model(arch)
    objective = Objective(mode="logit_diff", target_id=5, strategy="by_ref_token", contrast_id=7)
    ids = torch.randint(0, 90, (1, 40), generator=torch.Generator().manual_seed(1))
    block = lxt.decoder_blocks(model)[0]
    inner = next(m for name, m in block.named_children() if name in ("mlp", "intermediate"))
    calls = []
    inner.register_forward_pre_hook(lambda *_: calls.append(1))  # the block's later part

    def run():
        calls.clear()
        emb, grad, logits, value = attribution.input_gradient(model, ids, objective, lrp=lrp)
        return (emb * grad).sum(-1), logits, value, len(calls)

    monkeypatch.setattr(attribution, "RECOMPUTE_FROM_TOKENS", 41)
    kept, kept_logits, kept_value, kept_calls = run()
    monkeypatch.setattr(attribution, "RECOMPUTE_FROM_TOKENS", 40)
    again, again_logits, again_value, again_calls = run()
    assert (kept_calls, again_calls) == (1, 2)  # the block ran again in the backward
    assert kept.abs().sum() > 1e-6
    torch.testing.assert_close(again, kept, atol=0, rtol=0)  # the same numbers, bit for bit
    torch.testing.assert_close(again_logits, kept_logits, atol=0, rtol=0)
    torch.testing.assert_close(again_value, kept_value, atol=0, rtol=0)
    assert "forward" not in vars(lxt.decoder_blocks(model)[0])  # the class's forward again


def test_recomputed_blocks_keep_a_forward_someone_else_set():
    """A block may already carry an instance-level forward (the graph session's checkpointing
    sets one): recomputed_blocks wraps it and puts it back afterwards, not the class's."""
    from reportgen.attribution import recomputed_blocks

    model = tiny_model("llama")
    block = lxt.decoder_blocks(model)[0]
    calls = []
    original = block.forward

    def wrapper(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    block.forward = wrapper
    with recomputed_blocks(model):
        emb = model.get_input_embeddings()(IDS).detach().requires_grad_(True)
        model(inputs_embeds=emb).logits[0, -1, 5].backward()
    assert len(calls) == 2  # the forward, then its rerun in the backward
    assert vars(block)["forward"] is wrapper
    assert "forward" not in vars(lxt.decoder_blocks(model)[1])


def test_bigger_models_recompute_from_the_same_activation_size():
    """The length from which blocks are recomputed follows blocks x width: SmolLM2's measured
    4,096 tokens, earlier for a wider or deeper model, never later for a smaller one."""
    from types import SimpleNamespace

    from reportgen import attribution

    def shaped(blocks, hidden):
        return SimpleNamespace(config=SimpleNamespace(num_hidden_layers=blocks, hidden_size=hidden))

    assert attribution.recompute_from(shaped(30, 576)) == 4096  # SmolLM2-135M
    assert attribution.recompute_from(shaped(18, 640)) == 4096  # Gemma 3 270M: smaller
    assert attribution.recompute_from(shaped(28, 1536)) == 1645  # Qwen2.5-Coder-1.5B
    assert attribution.recompute_from(shaped(24, 896)) == 3291  # Qwen2.5-Coder-0.5B
    assert attribution.recompute_from(SimpleNamespace()) == 4096  # no config: the default
