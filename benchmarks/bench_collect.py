"""Generation and strict-recovery search on a handful of HumanEval problems on SmolLM2.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_collect.py [--problems 6] [--budget 16]

Prints tokens per second of greedy generation one sequence at a time against one batch, then,
for each failure, continuations and seconds of the search with the prefix KV cache reused and
with everything re-encoded for every continuation (the naive search), and per pinned pair."""

from __future__ import annotations

import argparse
import time

import torch

from reportgen.collect.generate import eos_ids, greedy
from reportgen.collect.humaneval import HumanEval
from reportgen.collect.recover import candidates, search
from reportgen.inputs import prepare_input
from reportgen.models import load_model
from reportgen.question import PromptSpec


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--problems", type=int, default=6)
    parser.add_argument("--start", type=int, default=100, help="first HumanEval index")
    parser.add_argument("--max-new-tokens", type=int, default=160)
    parser.add_argument("--budget", type=int, default=16)
    parser.add_argument("--top-k", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    loaded = load_model(args.model)
    tok, model = loaded.tokenizer, loaded.model
    bench = HumanEval()
    items = bench.items()[args.start : args.start + args.problems]
    chat = bool(tok.chat_template)
    heads = [
        list(prepare_input(tok, PromptSpec(bench.prompt(i, chat), chat=chat)).token_ids)
        for i in items
    ]
    eos = eos_ids(loaded)
    text = lambda ids: tok.decode(ids, skip_special_tokens=True)  # noqa: E731
    stop = lambda row, ids: bench.stop(text(ids), chat)  # noqa: E731
    print(
        f"torch threads {torch.get_num_threads()}; {len(items)} problems, max {args.max_new_tokens} new tokens"
    )

    started = time.perf_counter()
    singles = [
        greedy(model, [h], eos=eos, max_new_tokens=args.max_new_tokens, stop=stop)[0] for h in heads
    ]
    single_s = time.perf_counter() - started
    started = time.perf_counter()
    batched = greedy(
        model, heads, eos=eos, max_new_tokens=args.max_new_tokens, stop=stop, top_k=args.top_k + 1
    )
    batch_s = time.perf_counter() - started
    n_single = sum(len(g.ids) for g in singles)
    n_batch = sum(len(g.ids) for g in batched)
    same = sum(a.ids == b.ids for a, b in zip(singles, batched, strict=True))
    print(f"one at a time: {n_single} tokens in {single_s:.1f}s = {n_single / single_s:.1f} tok/s")
    print(
        f"batch of {len(heads)}:    {n_batch} tokens in {batch_s:.1f}s = {n_batch / batch_s:.1f} tok/s ({same}/{len(heads)} outputs identical)"
    )

    print(
        f"\n{'problem':>14} {'cands':>6} {'reuse: cont':>11} {'s':>7} {'pin':>4} {'naive: cont':>11} {'s':>7} {'pin':>4}"
    )
    totals = {True: [0, 0.0, 0], False: [0, 0.0, 0]}
    skip = set(tok.all_special_ids) | eos
    for item, head, gen in zip(items, heads, batched, strict=True):
        if bench.verify(item, text(gen.ids), chat).passed:
            print(f"{item.id:>14} passes")
            continue
        end = bench.answer_end(text(gen.ids), chat)
        last = None
        if end is not None:
            last = max(p for p in range(len(gen.ids)) if len(text(gen.ids[:p])) < end)
        cands = candidates(gen, top_k=args.top_k, skip_ids=skip, last_position=last)
        row = [f"{item.id:>14}", f"{len(cands):>6}"]
        for reuse in (True, False):
            started = time.perf_counter()
            result = search(
                model,
                head,
                gen,
                cands,
                passes=lambda ids, item=item: bench.verify(item, text(ids), chat).passed,
                eos=eos,
                max_new_tokens=args.max_new_tokens,
                stop=lambda ids: bench.stop(text(ids), chat),
                budget=args.budget,
                batch_size=args.batch_size,
                reuse_prefix=reuse,
            )
            seconds = time.perf_counter() - started
            totals[reuse][0] += result.tried
            totals[reuse][1] += seconds
            totals[reuse][2] += bool(result.found)
            row += [
                f"{result.tried:>11}",
                f"{seconds:>7.1f}",
                f"{'yes' if result.found else 'no':>4}",
            ]
        print(" ".join(row))
    for reuse, (cont, seconds, pins) in totals.items():
        label = "prefix cache reused" if reuse else "naive (re-encode)  "
        per = (
            f"{cont / pins:.1f} continuations and {seconds / pins:.1f}s per pinned pair"
            if pins
            else "no pair pinned"
        )
        print(
            f"{label}: {cont} continuations in {seconds:.1f}s ({seconds / max(cont, 1):.2f}s each); {pins} pinned; {per}"
        )


if __name__ == "__main__":
    main()
