"""Tiny random models of every architecture lxt supports, built from configs (no downloads)."""

from __future__ import annotations

import torch
import transformers as tf

VOCAB = 97

_DECODER = dict(
    vocab_size=VOCAB,
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=128,
)

CONFIGS = {
    "llama": lambda: tf.LlamaConfig(**_DECODER, attention_bias=True),
    "mistral": lambda: tf.MistralConfig(**_DECODER, sliding_window=4),
    "qwen2": lambda: tf.Qwen2Config(**_DECODER),
    "qwen3": lambda: tf.Qwen3Config(**_DECODER, head_dim=8),
    "olmo": lambda: tf.OlmoConfig(**_DECODER),
    "olmo2": lambda: tf.Olmo2Config(**_DECODER),
    "olmo3": lambda: tf.Olmo3Config(**_DECODER, sliding_window=4),
    "gemma3_text": lambda: tf.Gemma3TextConfig(
        **_DECODER, head_dim=8, sliding_window=4, query_pre_attn_scalar=8
    ),
    "phi3": lambda: tf.Phi3Config(**_DECODER, pad_token_id=0),
    "gpt2": lambda: tf.GPT2Config(
        vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=128
    ),
    "bert": lambda: tf.BertConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=128,
    ),
}

ARCHITECTURES = sorted(CONFIGS)


def tiny_model(
    model_type: str,
    attn_implementation: str = "sdpa",
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
) -> torch.nn.Module:
    config = CONFIGS[model_type]()
    config._attn_implementation = attn_implementation
    torch.manual_seed(seed)
    if model_type == "bert":
        model = tf.BertForMaskedLM(config)
    else:
        model = tf.AutoModelForCausalLM.from_config(config, attn_implementation=attn_implementation)
    # random init has tiny norms weights for some archs (Gemma: zeros -> 1+0); perturb them so
    # every rule sees non-trivial values
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" in name.lower() and param.dim() == 1:
                param.add_(0.1 * torch.randn_like(param))
    return model.to(dtype).eval()


WORDS = [
    "the",
    "capital",
    "of",
    "france",
    "is",
    "paris",
    "lyon",
    "list",
    "three",
    "primary",
    "colors",
    "red",
    "blue",
    "yellow",
    "green",
    "a",
    "b",
    "c",
    "1",
    "2",
    "3",
    "+",
    "=",
    ".",
    ",",
    ":",
]


def tiny_tokenizer():
    """A word-level tokenizer with BOS/EOS and a chat template, built in memory (no hub)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<unk>", "<s>", "</s>", "<|user|>", "<|assistant|>"]
    filler = [f"w{i}" for i in range(VOCAB - len(specials) - len(WORDS))]
    vocab = {token: i for i, token in enumerate([*specials, *WORDS, *filler])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|user|>", "<|assistant|>"]})
    tokenizer.chat_template = (
        "{% for m in messages %}<|user|> {{ m['content'] }} {% endfor %}"
        "{% if add_generation_prompt %}<|assistant|> {% endif %}"
    )
    return tokenizer


def save_tiny_llama(folder) -> str:
    """A tiny random Llama + tokenizer as a local model folder the CLI can load."""
    model = tiny_model("llama")
    model.save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    return str(folder)


def save_tiny(model_type: str, folder, seed: int = 0) -> str:
    """Any tiny architecture + the tiny tokenizer as a local model folder."""
    tiny_model(model_type, seed=seed).save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    return str(folder)
