"""Batched greedy generation with the KV cache (left padding, finished rows dropped from the
batch), per-step top-k logits for the recovery search, results streamed to a JSONL, resume."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch


@dataclass
class Generation:
    """Greedy output of one sequence. ``ids`` are the output tokens (an EOS it emitted is the
    last one); ``top_ids``/``top_logits`` the k best next tokens at each step (when recorded)."""

    ids: list[int]
    stopped: str  # "eos", "stop" (the benchmark's stop rule), "length"
    top_ids: list[list[int]] = field(default_factory=list)
    top_logits: list[list[float]] = field(default_factory=list)


@dataclass
class SharedPrefix:
    """The KV cache of token ids every sequence of a batch starts with."""

    ids: list[int]
    cache: Any


def eos_ids(loaded: Any) -> set[int]:
    ids: set[int] = set()
    tok = loaded.tokenizer
    if tok.eos_token_id is not None:
        ids.add(int(tok.eos_token_id))
    gen_eos = getattr(getattr(loaded.model, "generation_config", None), "eos_token_id", None)
    if isinstance(gen_eos, int):
        ids.add(gen_eos)
    elif gen_eos:
        ids.update(int(i) for i in gen_eos)
    im_end = tok.convert_tokens_to_ids("<|im_end|>") if "<|im_end|>" in tok.get_vocab() else None
    if im_end is not None:
        ids.add(int(im_end))
    return ids


def _cache_kwarg(model: Any) -> str:
    """transformers 5.x renamed ``past_key_values`` to ``cache``."""
    import inspect

    params = inspect.signature(model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def prefix_cache(model: Any, ids: Sequence[int]) -> SharedPrefix:
    """Encode ``ids`` once; batches starting with (a prefix of) them reuse the cache."""
    from transformers import DynamicCache

    cache = DynamicCache()
    with torch.no_grad():
        model(
            input_ids=torch.tensor([list(ids)], device=model.device),
            use_cache=True,
            logits_to_keep=1,
            **{_cache_kwarg(model): cache},
        )
    return SharedPrefix(list(ids), cache)


def _shared_cache(shared: SharedPrefix, length: int, batch: int) -> Any:
    cache = copy.deepcopy(shared.cache)
    extra = cache.get_seq_length() - length
    if extra > 0:
        cache.crop(-extra)
    if batch > 1:
        cache.batch_repeat_interleave(batch)
    return cache


def greedy(
    model: Any,
    sequences: Sequence[Sequence[int]],
    *,
    eos: set[int],
    max_new_tokens: int | Sequence[int],
    stop: Callable[[int, list[int]], bool] | None = None,
    top_k: int = 0,
    shared: SharedPrefix | None = None,
    shared_length: int = 0,
    pad_id: int = 0,
    on_finish: Callable[[int, Generation], None] | None = None,
) -> list[Generation]:
    """Continue every sequence greedily, as one batch.

    With ``shared``, each sequence is the part after the first ``shared_length`` ids of
    ``shared.ids`` (their KV cache is reused, not re-encoded). ``stop(i, new_ids)`` ends
    sequence i early; ``max_new_tokens`` may differ per sequence (a limit of 0 generates
    nothing). ``on_finish`` is called as each sequence finishes."""
    n = len(sequences)
    limits = [max_new_tokens] * n if isinstance(max_new_tokens, int) else list(max_new_tokens)
    results: list[Generation | None] = [None] * n
    new: list[list[int]] = [[] for _ in range(n)]
    tops: list[list[list[int]]] = [[] for _ in range(n)]
    top_logits: list[list[list[float]]] = [[] for _ in range(n)]

    def finish(i: int, why: str) -> None:
        results[i] = Generation(new[i], why, tops[i], top_logits[i])
        if on_finish is not None:
            on_finish(i, results[i])

    active = []
    for i in range(n):
        if limits[i] <= 0:
            finish(i, "length")
        else:
            active.append(i)
    if not active:
        return results  # type: ignore[return-value]
    device = model.device
    longest = max(len(sequences[i]) for i in active)
    rows = [[pad_id] * (longest - len(sequences[i])) + list(sequences[i]) for i in active]
    chunk_mask = [[0] * (longest - len(sequences[i])) + [1] * len(sequences[i]) for i in active]
    input_ids = torch.tensor(rows, device=device)
    mask = torch.tensor(chunk_mask, device=device, dtype=torch.long)
    if shared is not None and shared_length > 0:
        mask = torch.cat(
            [torch.ones(len(active), shared_length, dtype=torch.long, device=device), mask], 1
        )
        cache = _shared_cache(shared, shared_length, len(active))
    else:
        from transformers import DynamicCache

        cache = DynamicCache()
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    position_ids = positions[:, -input_ids.shape[1] :]
    cache_kw = _cache_kwarg(model)
    with torch.no_grad():
        while True:
            out = model(
                input_ids=input_ids,
                attention_mask=mask,
                position_ids=position_ids,
                use_cache=True,
                logits_to_keep=1,
                **{cache_kw: cache},
            )
            logits = out.logits[:, -1].float()
            if top_k:
                values, indices = logits.topk(top_k, dim=-1)
                next_ids = indices[:, 0].tolist()
                values, indices = values.tolist(), indices.tolist()
            else:
                next_ids = logits.argmax(-1).tolist()
            keep = []
            for row, i in enumerate(active):
                token = int(next_ids[row])
                new[i].append(token)
                if top_k:
                    tops[i].append(indices[row])
                    top_logits[i].append([round(v, 5) for v in values[row]])
                if token in eos:
                    finish(i, "eos")
                elif stop is not None and stop(i, new[i]):
                    finish(i, "stop")
                elif len(new[i]) >= limits[i]:
                    finish(i, "length")
                else:
                    keep.append(row)
            if not keep:
                break
            if len(keep) < len(active):
                index = torch.tensor(keep, device=device)
                cache.batch_select_indices(index)
                mask = mask[index]
                active = [active[r] for r in keep]
                next_ids = [next_ids[r] for r in keep]
                position_ids = position_ids[index]
            input_ids = torch.tensor([[t] for t in next_ids], device=device)
            mask = torch.cat([mask, torch.ones(len(active), 1, dtype=torch.long, device=device)], 1)
            position_ids = position_ids[:, -1:] + 1
    return results  # type: ignore[return-value]


# --- the generation phase of `collect`: fixed batches, streamed JSONL, resume -------------------


def settings_key(settings: dict[str, Any]) -> str:
    text = json.dumps(settings, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Records of an earlier run; a line cut short by an interruption is ignored."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        handle.flush()


def generate_items(
    model: Any,
    heads: Sequence[Sequence[int]],
    keys: Sequence[str],
    *,
    eos: set[int],
    max_new_tokens: int,
    stop: Callable[[list[int]], bool] | None,
    finished: Callable[[int, Generation], dict[str, Any]],
    done: set[str],
    batch_size: int = 8,
    top_k: int = 8,
    pad_id: int = 0,
    progress: Callable[[int], None] | None = None,
    out_of_time: Callable[[], bool] | None = None,
) -> None:
    """Generate for every item not in ``done`` (no new batch starts once ``out_of_time()``). Items are cut into fixed batches in their order
    (so a resumed run pads the same way and gets the same outputs); a batch with every item
    done is skipped, and ``finished(index, generation)`` is called for each new result as soon
    as it finishes (the caller verifies and streams it)."""
    for start in range(0, len(heads), batch_size):
        batch = list(range(start, min(start + batch_size, len(heads))))
        if all(keys[i] in done for i in batch):
            continue
        if out_of_time is not None and out_of_time():
            return

        def on_finish(row: int, gen: Generation, batch: list[int] = batch) -> None:
            index = batch[row]
            if keys[index] not in done:
                finished(index, gen)
                done.add(keys[index])
                if progress is not None:
                    progress(1)

        greedy(
            model,
            [heads[i] for i in batch],
            eos=eos,
            max_new_tokens=max_new_tokens,
            stop=(lambda row, ids: stop(ids)) if stop is not None else None,
            top_k=top_k,
            pad_id=pad_id,
            on_finish=on_finish,
        )
