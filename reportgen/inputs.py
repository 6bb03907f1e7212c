"""Turning a prompt (+ chat template, response prefix, BOS choice) into the exact token ids."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import TokenError
from .question import PromptSpec


@dataclass(frozen=True)
class PreparedInput:
    token_ids: tuple[int, ...]
    text: str
    prompt_length: int  # tokens before the response prefix


def chat_text(tokenizer: Any, prompt: str) -> str:
    if not getattr(tokenizer, "chat_template", None):
        raise TokenError("the model's tokenizer has no chat template; drop --chat / chat = true")
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
    )


def _apply_bos(tokenizer: Any, ids: list[int], bos: bool | None) -> list[int]:
    bos_id = tokenizer.bos_token_id
    if bos is None:
        return ids
    if bos and bos_id is None:
        raise TokenError("--bos asked for, but the tokenizer has no BOS token")
    if bos and (not ids or ids[0] != bos_id):
        return [bos_id, *ids]
    if not bos and ids and bos_id is not None and ids[0] == bos_id:
        return ids[1:]
    return ids


def prepare_input(tokenizer: Any, spec: PromptSpec) -> PreparedInput:
    """Encode prompt and prefix as one string (what a user would type), unless exact
    ``prefix_ids`` are given: re-tokenising can merge tokens the model generated separately."""
    if spec.chat:
        head = chat_text(tokenizer, spec.prompt)
        add_special = False  # the template writes its own special tokens
    else:
        head = spec.prompt
        add_special = True
    if spec.prefix_ids is not None:
        head_ids = tokenizer.encode(head, add_special_tokens=add_special)
        vocab_size = len(tokenizer)
        outside = [i for i in spec.prefix_ids if not 0 <= i < vocab_size]
        if outside:
            raise TokenError(
                f"prefix_ids {outside[:5]} are outside the vocabulary (0..{vocab_size - 1})"
            )
        decoded = tokenizer.decode(list(spec.prefix_ids))
        if decoded != spec.prefix:
            raise TokenError(f"prefix_ids decode to {decoded!r}, not to prefix {spec.prefix!r}")
        ids = [*head_ids, *spec.prefix_ids]
    else:
        ids = tokenizer.encode(head + spec.prefix, add_special_tokens=add_special)
        head_ids = tokenizer.encode(head, add_special_tokens=add_special)
    ids = _apply_bos(tokenizer, list(ids), spec.bos)
    prompt_length = len(_apply_bos(tokenizer, list(head_ids), spec.bos))
    if not ids:
        raise TokenError("the prompt encodes to no tokens")
    return PreparedInput(token_ids=tuple(ids), text=head + spec.prefix, prompt_length=prompt_length)


@dataclass(frozen=True)
class ResolvedToken:
    id: int
    text: str  # what the user asked for
    token: str  # the token string as the tokenizer has it
    first_subtoken_of: str | None  # set when a multi-token string was cut to its first token


def resolve_token(tokenizer: Any, value: str | int, role: str) -> ResolvedToken:
    """A target/contrast given as a token id, or as a string whose first sub-token is used."""
    vocab_size = len(tokenizer)
    if isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value < vocab_size:
            raise TokenError(f"{role} id {value} is outside the vocabulary (0..{vocab_size - 1})")
        return ResolvedToken(
            value, tokenizer.decode([value]), tokenizer.convert_ids_to_tokens(value), None
        )
    if not isinstance(value, str) or value == "":
        raise TokenError(f"{role} must be a non-empty string or a token id, got {value!r}")
    ids = tokenizer.encode(value, add_special_tokens=False)
    if not ids:
        raise TokenError(f"{role} {value!r} encodes to no token")
    first = ids[0]
    unk = tokenizer.unk_token_id
    if unk is not None and first == unk and value != tokenizer.unk_token:
        raise TokenError(
            f"{role} {value!r} is not in the vocabulary (encodes to the unknown token)"
        )
    return ResolvedToken(
        id=first,
        text=value,
        token=tokenizer.convert_ids_to_tokens(first),
        first_subtoken_of=value if len(ids) > 1 else None,
    )
