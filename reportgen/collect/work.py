"""The worker side of `reportgen collect`: what runs where the model is.

``Collector`` wraps one loaded model and one benchmark (tokenising prompts, the stop rule,
the recovery search and the re-check of a pair through the ordinary case path). The tasks
below are the units the runner's executors send to a worker -- in the driver's process, a
local worker process or a Ray actor, each keeping its loaded model between tasks: one model
check (``Prepare``), one generation batch (``GenerateBatch``), one failure's search
(``Recover``). They return plain records; the driver journals them and writes the files."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..runner import ModelRuntime
from ..runner.jobs import Worker
from .benchmarks import Benchmark, Item
from .generate import Generation, eos_ids, generate_items, greedy
from .recover import Found, candidates, search
from .settings import Settings, search_batch
from .writer import collected_case_toml


class Collector:
    """One benchmark on one loaded model; ``out`` is the folder the cases will be written to
    (their path in messages), ``case_suffix`` what a case id gets after the item's slug."""

    def __init__(
        self,
        loaded: Any,
        model_spec: str,
        bench: Benchmark,
        settings: Settings,
        out: Path = Path("."),
        case_suffix: str = "",
    ) -> None:
        self.loaded, self.model_spec, self.bench = loaded, model_spec, bench
        self.settings, self.out, self.case_suffix = settings, out, case_suffix
        tok = loaded.tokenizer
        self.tok = tok
        self.chat = bool(getattr(tok, "chat_template", None))
        self.eos = eos_ids(loaded)
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else min(self.eos)
        self.max_new = settings.max_new_tokens or bench.max_new_tokens
        self.skip_ids = set(int(i) for i in tok.all_special_ids) | self.eos

    def text(self, ids: Sequence[int]) -> str:
        return self.tok.decode(list(ids), skip_special_tokens=True)

    def head(self, item: Item) -> list[int]:
        from ..errors import ReportgenError
        from ..inputs import prepare_input
        from ..pipeline import context_length
        from ..question import PromptSpec

        spec = PromptSpec(self.bench.prompt(item, self.chat), chat=self.chat)
        ids = list(prepare_input(self.tok, spec).token_ids)
        limit = context_length(self.loaded.model)
        if limit is not None and len(ids) + self.max_new > limit[0]:
            raise ReportgenError(
                f"{self.bench.name} item {item.id}: the prompt is {len(ids):,} tokens and up to "
                f"{self.max_new:,} more are generated, more than the {limit[0]:,} of "
                f"{self.model_spec}'s context ({limit[1]}); shorten the prompt or lower "
                "--max-new-tokens"
            )
        return ids

    def stop(self, ids: list[int]) -> bool:
        return self.bench.stop(self.text(ids), self.chat)

    def last_position(self, ids: list[int]) -> int | None:
        end = self.bench.answer_end(self.text(ids), self.chat)
        if end is None:
            return None
        last = 0
        for p in range(len(ids)):
            if len(self.text(ids[:p])) < end:
                last = p
            else:
                break
        return last

    def gen_record(self, item: Item, gen: Generation) -> dict[str, Any]:
        """The journal's ``gen`` record: the greedy output with its top-k and its verdict."""
        verdict = self.bench.verify(item, self.text(gen.ids), self.chat)
        return {
            "kind": "gen",
            "item": item.id,
            "ids": gen.ids,
            "stopped": gen.stopped,
            "top_ids": gen.top_ids,
            "top_logits": gen.top_logits,
            "passed": verdict.passed,
            "message": verdict.message,
        }

    def recover(
        self, item: Item, head: list[int], record: dict[str, Any], search_key: str
    ) -> dict[str, Any]:
        s = self.settings
        gen = Generation(record["ids"], record["stopped"], record["top_ids"], record["top_logits"])
        decoded: dict[int, str] = {}

        def piece(i: int) -> str:
            if i not in decoded:
                decoded[i] = self.tok.decode([i])
            return decoded[i]

        full_text = self.text(gen.ids)
        offsets = [len(self.text(gen.ids[:p])) for p in range(len(gen.ids))]

        def pairs(min_gap: float) -> list[Any]:
            return candidates(
                gen,
                top_k=s.top_k,
                skip_ids=self.skip_ids,
                last_position=self.last_position(gen.ids),
                same_text=lambda a, b: piece(a) == piece(b),
                priority=lambda position, chosen, alt: self.bench.priority(
                    item, full_text, offsets[position], piece(chosen), piece(alt)
                ),
                min_gap=min_gap,
            )

        cands = pairs(s.min_gap)
        every = len(pairs(0.0)) if s.min_gap > 0 else len(cands)
        rejected: Counter[str] = Counter()
        dropped: list[str] = []
        accepted: dict[str, Any] = {}

        def passes(found: Found) -> bool:
            verdict = self.bench.check_recovery(
                item,
                self.text(found.output_ids),
                self.chat,
                finished=found.stopped != "length",
                swap=offsets[found.candidate.position],
            )
            if not verdict.passed:
                rejected[verdict.criterion or "fails"] += 1
            return verdict.passed

        def accept(found: Found) -> bool:
            ok, reason, case = self.confirm(item, head, gen, found)
            if ok:
                accepted.update(case)
            else:
                dropped.append(reason)
            return ok

        result = search(
            self.loaded.model,
            head,
            gen,
            cands,
            passes=passes,
            eos=self.eos,
            max_new_tokens=self.max_new,
            stop=self.stop,
            budget=s.budget,
            batch_size=search_batch(s),
            accept=accept,
            pad_id=self.pad_id,
        )
        base = {
            "kind": "pin",
            "item": item.id,
            "search": search_key,
            "tried": result.tried,
            "candidates": every,
            "below_min_gap": every - len(cands),
            "rejected": dict(sorted(rejected.items())),
            "dropped": dict(sorted(Counter(dropped).items())),
        }
        if result.found:
            return base | accepted
        if dropped:
            reason = "recovering pair(s) found but dropped: " + "; ".join(dict.fromkeys(dropped))
        elif not cands and every:
            reason = f"no candidate with a logit gap >= {s.min_gap:g} (of {every} among the top-{s.top_k})"
        elif not cands:
            reason = "no candidate positions (nothing among the top-k to try)"
        elif result.exhausted:
            reason = f"no recovering pair among all {result.tried} candidates (top-{s.top_k}, gap >= {s.min_gap:g})"
        else:
            reason = f"no recovering pair within the budget of {s.budget} continuations (of {len(cands)} candidates)"
        if rejected:
            reason += (
                " [rejected: " + ", ".join(f"{k} {v}" for k, v in sorted(rejected.items())) + "]"
            )
        return base | {"reason": reason}

    def confirm(
        self, item: Item, head: list[int], gen: Generation, found: Found
    ) -> tuple[bool, str, dict[str, Any]]:
        """The pair must survive the ordinary case path: the written case, loaded and
        re-tokenised as `reportgen attribute` does, gives the same ids and greedy target, with
        the logit gap at least ``min_gap`` (checked first: no continuation for a near-tie); and
        unbatched greedy continuation fails for the benchmark's reason with the target and
        recovers (strictly) with the contrast. On a drop, the third value may say which rule
        (``criterion``) and whether the target path broke it."""
        import torch

        from ..cases import Case, case_model_spec
        from ..pipeline import prepare_question
        from ..question import PromptSpec, Question

        cand = found.candidate
        p = cand.position
        prefix_ids = list(gen.ids[:p])
        target, contrast = int(gen.ids[p]), int(cand.alternative)
        ids = list(head) + prefix_ids
        with torch.no_grad():
            logits = self.loaded.model(
                input_ids=torch.tensor([ids], device=self.loaded.model.device), use_cache=False
            ).logits[0, -1]
        gap = round(float(logits[target] - logits[contrast]), 5)
        if int(logits.argmax()) != target:
            return False, "the target is not the greedy token on the case path", {}
        if gap < self.settings.min_gap:
            return (
                False,
                f"the logit gap on the case path is {gap:.3f} < {self.settings.min_gap:g}",
                {"criterion": "gap"},
            )
        # one sequence at a time, without padding: what a plain re-check would run
        continuations = []
        for tok in (target, contrast):
            if tok in self.eos or self.stop(prefix_ids + [tok]):
                continuations.append(Generation([], "stop"))
                continue
            continuations.append(
                greedy(
                    self.loaded.model,
                    [ids + [tok]],
                    eos=self.eos,
                    max_new_tokens=self.max_new - p - 1,
                    stop=lambda row, new, tok=tok: self.stop(prefix_ids + [tok] + new),
                    pad_id=self.pad_id,
                )[0]
            )
        fail_ids = prefix_ids + [target] + continuations[0].ids
        pass_ids = prefix_ids + [contrast] + continuations[1].ids
        swap = len(self.text(prefix_ids))
        fail_v = self.bench.check_failure(
            item, self.text(fail_ids), self.chat, finished=continuations[0].stopped != "length"
        )
        pass_v = self.bench.check_recovery(
            item,
            self.text(pass_ids),
            self.chat,
            finished=continuations[1].stopped != "length",
            swap=swap,
        )
        if not fail_v.passed:
            return (
                False,
                f"unbatched, the target path is no clean failure ({fail_v.message})",
                {"criterion": fail_v.criterion, "target": True},
            )
        if not pass_v.passed:
            return (
                False,
                f"unbatched, the contrast path does not recover ({pass_v.message})",
                {"criterion": pass_v.criterion},
            )
        case_id = item.slug + self.case_suffix
        path = self.out / f"{case_id}.toml"
        target_text, contrast_text = self.tok.decode([target]), self.tok.decode([contrast])
        presentation = {
            "id": case_id,
            "title": f"{item.id}: writes {target_text!r} where {contrast_text!r} would recover",
            "description": (
                f"{self.bench.name} item {item.id}. At output token {p} the model prefers "
                f"{target_text!r} over {contrast_text!r} (logit gap {gap:.3f}). "
                f"Target path (greedy on): fails for the benchmark's reason -- {fail_v.message}. "
                f"Contrast path ({contrast_text!r} there, greedy on): recovers -- {pass_v.message}."
            ),
            "model": case_model_spec(self.model_spec, self.out),
            "tags": {"benchmark": self.bench.name, "pattern": ""},
        }
        prompt = self.bench.prompt(item, self.chat)
        source = {
            "benchmark": self.bench.name,
            "item": item.id,
            **self.bench.source(item),
            "max_new_tokens": self.max_new,
            "position": p,
            "rank": cand.rank,
            "logit_gap": gap,
            "min_gap": self.settings.min_gap,
            "target_text": target_text,
            "contrast_text": contrast_text,
            "failing": fail_v.message,
            "recovering": pass_v.message,
            "verdict_target": f"fails: {fail_v.message} (finished: {continuations[0].stopped})",
            "verdict_contrast": f"recovers: {pass_v.message} (finished: {continuations[1].stopped})",
            "target_stopped": continuations[0].stopped,
            "contrast_stopped": continuations[1].stopped,
            "failing_output": self.text(fail_ids),
            "recovering_output": self.text(pass_ids),
        }
        try:
            question = Question(
                PromptSpec(prompt, self.chat, self.tok.decode(prefix_ids), tuple(prefix_ids)),
                target,
                contrast,
            )
            case = Case(path=str(path), question=question, source=source, **presentation)
            text = collected_case_toml(case)  # read back: a valid case asking this question
            prepared = prepare_question(self.loaded, question)
        except Exception as exc:  # noqa: BLE001 - any failure drops the pair with its reason
            return False, f"case does not load ({exc})", {}
        if list(prepared.inputs.token_ids) != ids:
            return False, "the case re-tokenises to different ids", {}
        if prepared.objective.target_id != target:
            return False, "the target is not the greedy token on the case path", {}
        if self.settings.explain_check:
            from ..pipeline import explain

            attribution = explain(self.loaded, question)
            if attribution.top_k[0].id != target:
                return False, "the target is not top-1 in `reportgen attribute`", {}
        return True, "", {"case_id": case_id, "case": text, "position": p}


def past(deadline: float | None) -> bool:
    """``deadline`` is wall-clock time (``time.time()``): workers on other processes or
    machines compare against the same clock."""
    return deadline is not None and time.time() > deadline


@dataclass(frozen=True, kw_only=True)
class CollectWork:
    """Fields every collect task has (the runner's ``Work``)."""

    index: int
    case_path: str  # what messages call it ("humaneval on M: generation batch 3")
    model: str
    runtimes: dict[str, ModelRuntime]
    bench: Benchmark
    settings: Settings
    code: str = ""
    attempt: int = 0

    @property
    def group(self) -> tuple[str, ModelRuntime]:
        return (self.model, self.runtimes[self.model])

    def collector(self, worker: Worker, out: str = ".", suffix: str = "") -> Collector:
        loaded = worker.load(self.model, self.runtimes[self.model])
        return Collector(loaded, self.model, self.bench, self.settings, Path(out), suffix)


@dataclass(frozen=True, kw_only=True)
class Prepare(CollectWork):
    """Loads the model and says whether it gets the chat template (part of the journal key)."""

    def perform(self, worker: Worker, progress: Any = None) -> dict[str, Any]:
        return {"chat": self.collector(worker).chat}


@dataclass(frozen=True, kw_only=True)
class GenerateBatch(CollectWork):
    """One fixed batch of items (cut by the driver, the same whatever the worker count: the
    padding, hence the outputs, stay the same); ``done`` items are generated in the batch but
    not returned. Nothing is generated once ``deadline`` has passed."""

    items: tuple[Item, ...]
    done: frozenset[str] = frozenset()
    deadline: float | None = None

    def perform(self, worker: Worker, progress: Any = None) -> dict[str, Any]:
        if past(self.deadline):
            return {"skipped": True}
        c = self.collector(worker)
        records: list[dict[str, Any]] = []

        def finished(index: int, gen: Generation) -> dict[str, Any]:
            records.append(c.gen_record(self.items[index], gen))
            return records[-1]

        generate_items(
            c.loaded.model,
            [c.head(item) for item in self.items],
            [item.id for item in self.items],
            eos=c.eos,
            max_new_tokens=c.max_new,
            stop=c.stop,
            finished=finished,
            done=set(self.done),
            batch_size=len(self.items),
            top_k=max(self.settings.top_k + 1, 2),
            pad_id=c.pad_id,
        )
        return {"records": records}


@dataclass(frozen=True, kw_only=True)
class Recover(CollectWork):
    """One failed item: is it a clean failure, then the search for a recovering pair (not
    started once ``deadline`` has passed). Returns the outcome; a ``pin`` record is journaled."""

    item: Item
    record: dict[str, Any]
    search_key: str
    out: str
    suffix: str = ""
    deadline: float | None = None

    def perform(self, worker: Worker, progress: Any = None) -> dict[str, Any]:
        c = self.collector(worker, self.out, self.suffix)
        record = self.record
        clean = self.bench.check_failure(
            self.item, c.text(record["ids"]), c.chat, finished=record["stopped"] != "length"
        )
        if not clean.passed:
            # every target path continues this output: none would fail for the reason
            reason = f"the greedy output is no clean failure: {clean.message}"
            return {"outcome": {"reason": reason, "criterion": clean.criterion}}
        if past(self.deadline):
            # not journaled: a later run searches it
            reason = "not searched: the time limit was reached"
            return {"outcome": {"reason": reason, "criterion": "time limit"}}
        return {"outcome": c.recover(self.item, c.head(self.item), record, self.search_key)}
