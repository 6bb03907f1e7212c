"""`reportgen collect`: generate, verify, search each failure for a recovering token pair,
check the pair through the ordinary case path, write the cases and summary.json."""

from __future__ import annotations

import json
import re
import time
import tomllib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ReportgenError
from .benchmarks import Benchmark, Item
from .generate import (
    Generation,
    append_jsonl,
    eos_ids,
    generate_items,
    greedy,
    read_jsonl,
    settings_key,
)
from .recover import Found, candidates, search
from .registry import get_benchmark
from .writer import case_toml, write_case, write_summary


@dataclass(frozen=True)
class Settings:
    budget: int = 32
    top_k: int = 4
    batch_size: int = 8
    max_new_tokens: int | None = None  # None: the benchmark's own
    explain_check: bool = True  # also run AttnLRP on each written case (the full case path)
    time_limit: float | None = None  # seconds; items not generated/searched by then are reported
    min_gap: float = 1.0  # logit(target) - logit(contrast) at least this (the study's threshold)


#: bump when what makes a pin acceptable changes: journaled searches are then redone
STRICT_VERSION = 1


def model_slug(spec: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", Path(spec).name.lower()).strip("-") or "model"


def select_items(items: list[Item], wanted: Sequence[str] | None, limit: int | None) -> list[Item]:
    if wanted:
        by_key = {i.id: i for i in items} | {i.slug: i for i in items}
        missing = [w for w in wanted if w not in by_key]
        if missing:
            raise ReportgenError(f"unknown item(s): {', '.join(missing)}")
        return [by_key[w] for w in wanted]
    return items[:limit] if limit is not None else items


def work_dir() -> Path:
    from ..models import cache_dir

    return cache_dir() / "collect"


class _Run:
    """One benchmark on one model."""

    def __init__(
        self,
        loaded: Any,
        model_spec: str,
        bench: Benchmark,
        settings: Settings,
        out: Path,
        force: bool,
        case_suffix: str,
        log: Callable[[str], None],
    ) -> None:
        self.loaded, self.model_spec, self.bench = loaded, model_spec, bench
        self.settings, self.out, self.force = settings, out, force
        self.case_suffix, self.log = case_suffix, log
        tok = loaded.tokenizer
        self.tok = tok
        self.chat = bool(getattr(tok, "chat_template", None))
        self.eos = eos_ids(loaded)
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else min(self.eos)
        self.max_new = settings.max_new_tokens or bench.max_new_tokens
        self.skip_ids = set(int(i) for i in tok.all_special_ids) | self.eos

    # --- helpers ---------------------------------------------------------------------------
    def text(self, ids: Sequence[int]) -> str:
        return self.tok.decode(list(ids), skip_special_tokens=True)

    def head(self, item: Item) -> list[int]:
        from ..inputs import PromptSpec, prepare_input

        spec = PromptSpec(self.bench.prompt(item, self.chat), chat=self.chat)
        return list(prepare_input(self.tok, spec).token_ids)

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

    # --- the phases ------------------------------------------------------------------------
    def run(self, items: list[Item]) -> dict[str, Any]:
        from tqdm import tqdm

        started = time.monotonic()
        s = self.settings

        def out_of_time() -> bool:
            return s.time_limit is not None and time.monotonic() - started > s.time_limit

        gen_key = settings_key(
            {
                "model": self.model_spec,
                "benchmark": self.bench.name,
                "chat": self.chat,
                "max_new_tokens": self.max_new,
                "batch_size": s.batch_size,
                "items": [i.id for i in items],
                "prompts": [self.bench.prompt(i, self.chat) for i in items],
            }
        )
        search_key = settings_key(
            {
                "budget": s.budget,
                "top_k": s.top_k,
                "gen": gen_key,
                "search": self.bench.search_version,
                "min_gap": s.min_gap,
                "strict": STRICT_VERSION,
            }
        )
        journal = work_dir() / self.bench.name / f"{model_slug(self.model_spec)}-{gen_key}.jsonl"
        records = read_jsonl(journal)
        gens = {r["item"]: r for r in records if r.get("kind") == "gen"}
        pins = {
            r["item"]: r
            for r in records
            if r.get("kind") == "pin" and r.get("search") == search_key
        }
        heads = [self.head(i) for i in items]
        keys = [i.id for i in items]
        record_k = max(s.top_k + 1, 2)

        def finished(index: int, gen: Generation) -> dict[str, Any]:
            item = items[index]
            verdict = self.bench.verify(item, self.text(gen.ids), self.chat)
            record = {
                "kind": "gen",
                "item": item.id,
                "ids": gen.ids,
                "stopped": gen.stopped,
                "top_ids": gen.top_ids,
                "top_logits": gen.top_logits,
                "passed": verdict.passed,
                "message": verdict.message,
            }
            append_jsonl(journal, record)
            gens[item.id] = record
            return record

        todo = sum(1 for k in keys if k not in gens)
        gen_started = time.monotonic()
        with tqdm(
            total=todo, desc=f"{self.bench.name} generate", unit="item", disable=todo == 0
        ) as bar:
            generate_items(
                self.loaded.model,
                heads,
                keys,
                eos=self.eos,
                max_new_tokens=self.max_new,
                stop=self.stop,
                finished=finished,
                done=set(gens),
                batch_size=s.batch_size,
                top_k=record_k,
                pad_id=self.pad_id,
                progress=bar.update,
                out_of_time=out_of_time,
            )
        gen_seconds = time.monotonic() - gen_started
        generated = [i for i, item in enumerate(items) if item.id in gens]
        failed = [i for i in generated if not gens[items[i].id]["passed"]]
        outcome: dict[str, dict[str, Any]] = {}
        with tqdm(total=len(failed), desc=f"{self.bench.name} recover", unit="failure") as bar:
            for index in failed:
                item = items[index]
                record = gens[item.id]
                clean = self.bench.check_failure(
                    item,
                    self.text(record["ids"]),
                    self.chat,
                    finished=record["stopped"] != "length",
                )
                if not clean.passed:
                    # every target path continues this output: none would fail for the reason
                    outcome[item.id] = {
                        "reason": f"the greedy output is no clean failure: {clean.message}",
                        "criterion": clean.criterion,
                    }
                elif item.id in pins:
                    outcome[item.id] = pins[item.id]
                elif out_of_time():
                    # not journaled: a later run searches it
                    outcome[item.id] = {
                        "reason": "not searched: the time limit was reached",
                        "criterion": "time limit",
                    }
                else:
                    pins[item.id] = self.recover(item, heads[index], record, search_key)
                    append_jsonl(journal, pins[item.id])
                    outcome[item.id] = pins[item.id]
                bar.update(1)
        pinned, unpinned, files = [], [], {}
        for index in failed:
            item = items[index]
            pin = outcome[item.id]
            if pin.get("case"):
                status = write_case(self.out / f"{pin['case_id']}.toml", pin["case"], self.force)
                files[pin["case_id"]] = status
                pinned.append(pin["case_id"])
            else:
                unpinned.append({"item": item.id, "reason": pin["reason"]})
        for index in range(len(items)):
            if items[index].id not in gens:
                unpinned_reason = "not generated: the time limit was reached"
                unpinned.append({"item": items[index].id, "reason": unpinned_reason})
        passed = len(generated) - len(failed)
        searched = [o for o in outcome.values() if o.get("kind") == "pin"]
        funnel = {
            "items": len(items),
            "generated": len(generated),
            "passed": passed,
            "failed": len(failed),
            "not_clean_failure": dict(
                Counter(
                    o["criterion"]
                    for o in outcome.values()
                    if o.get("criterion", "") not in ("", "time limit")
                )
            ),
            "not_searched": sum(1 for o in outcome.values() if o.get("criterion") == "time limit"),
            "searched": len(searched),
            "candidates": sum(int(o.get("candidates", 0)) for o in searched),
            "below_min_gap": sum(int(o.get("below_min_gap", 0)) for o in searched),
            "none_at_min_gap": sum(
                1
                for o in searched
                if o.get("candidates") and o.get("candidates") == o.get("below_min_gap")
            ),
            "continuations": sum(int(o.get("tried", 0)) for o in searched),
            "rejected": _add_counts(o.get("rejected", {}) for o in searched),
            "dropped": _add_counts(o.get("dropped", {}) for o in searched),
            "pinned": len(pinned),
        }
        return {
            "model": self.model_spec,
            "chat": self.chat,
            "items": len(items),
            "passed": passed,
            "failed": len(failed),
            "pinned": len(pinned),
            "pin_rate": round(len(pinned) / len(failed), 4) if failed else None,
            "funnel": funnel,
            "cases": pinned,
            "files": files,
            "unpinned": unpinned,
            "continuations": funnel["continuations"],
            "generated_tokens": sum(len(gens[items[i].id]["ids"]) for i in generated),
            "generation_s": round(gen_seconds, 1),
            "wall_s": round(time.monotonic() - started, 1),
            "journal": str(journal),
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
            batch_size=s.batch_size,
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

        from ..cases import parse_case
        from ..pipeline import Question, prepare_question

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
        fields = {
            "id": case_id,
            "title": f"{item.id}: writes {target_text!r} where {contrast_text!r} would recover",
            "description": (
                f"{self.bench.name} item {item.id}. At output token {p} the model prefers "
                f"{target_text!r} over {contrast_text!r} (logit gap {gap:.3f}). "
                f"Target path (greedy on): fails for the benchmark's reason -- {fail_v.message}. "
                f"Contrast path ({contrast_text!r} there, greedy on): recovers -- {pass_v.message}."
            ),
            "model": self.model_spec,
            "chat": self.chat,
            "prompt": self.bench.prompt(item, self.chat),
            "prefix": self.tok.decode(prefix_ids),
            "prefix_ids": prefix_ids,
            "target": target,
            "contrast": contrast,
            "tags": {"benchmark": self.bench.name, "pattern": ""},
        }
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
        text = case_toml(fields, source)
        try:
            case = parse_case(tomllib.loads(text.split("\n", 1)[1]), str(path))
            question = Question.from_case(case)
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


def _add_funnels(funnels: list[dict[str, Any]]) -> dict[str, Any]:
    """One funnel for several models' runs: counts added, per-criterion tables merged."""
    total: dict[str, Any] = {}
    for funnel in funnels:
        for key, value in funnel.items():
            if isinstance(value, dict):
                total[key] = _add_counts([total.get(key, {}), value])
            else:
                total[key] = total.get(key, 0) + value
    return total


def _add_counts(counts: Any) -> dict[str, int]:
    total: Counter[str] = Counter()
    for c in counts:
        total.update(c)
    return dict(sorted(total.items()))


def collect(
    benchmark: str,
    models: Sequence[str],
    *,
    items: Sequence[str] | None = None,
    limit: int | None = None,
    settings: Settings = Settings(),
    out: Path = Path("cases"),
    force: bool = False,
    data: Path | None = None,
    log: Callable[[str], None] = lambda msg: None,
    load: Callable[[str], Any] | None = None,
) -> dict[str, Any]:
    """Collect ``benchmark`` on each model; write OUT/<benchmark>/<case>.toml + summary.json.
    ``load``: how a model spec is loaded (the CLI's --device/--dtype/--4bit); default CPU fp32."""
    from ..models import load_model

    if not models:
        raise ReportgenError("no model given")
    if settings.budget < 1 or settings.top_k < 1 or settings.batch_size < 1:
        raise ReportgenError("--budget, --top-k and the batch size must be >= 1")
    if settings.min_gap < 0:
        raise ReportgenError("--min-gap must be >= 0")
    bench = get_benchmark(benchmark)
    all_items = bench.items(data)
    chosen = select_items(all_items, items, limit)
    if not chosen:
        raise ReportgenError("no items selected")
    folder = out / bench.name
    runs = []
    started = time.monotonic()
    for spec in models:
        loaded = (load or load_model)(spec)
        suffix = "" if len(models) == 1 else "-" + model_slug(spec)
        run = _Run(loaded, spec, bench, settings, folder, force, suffix, log)
        runs.append(run.run(chosen))
    first = runs[0]
    summary = {
        "benchmark": bench.name,
        "model": first["model"] if len(runs) == 1 else [r["model"] for r in runs],
        "items_available": len(all_items),
        "selection": (
            "items " + ",".join(items)
            if items
            else f"first {limit}"
            if limit is not None
            else "all"
        ),
        "items": sum(r["items"] for r in runs),
        "passed": sum(r["passed"] for r in runs),
        "failed": sum(r["failed"] for r in runs),
        "pinned": sum(r["pinned"] for r in runs),
        "pin_rate": None,
        "funnel": _add_funnels([r["funnel"] for r in runs]),
        "unpinned": [u | {"model": r["model"]} for r in runs for u in r["unpinned"]],
        "wall_s": round(time.monotonic() - started, 1),
        "settings": {
            "budget": settings.budget,
            "top_k": settings.top_k,
            "batch_size": settings.batch_size,
            "max_new_tokens": settings.max_new_tokens or bench.max_new_tokens,
            "min_gap": settings.min_gap,
            "time_limit": settings.time_limit,
            "decoding": "greedy",
        },
        "runs": [{k: v for k, v in r.items() if k != "journal"} for r in runs],
    }
    if summary["failed"]:
        summary["pin_rate"] = round(summary["pinned"] / summary["failed"], 4)
    write_summary(folder / "summary.json", summary)
    return summary


def recheck(
    benchmark: str,
    *,
    settings: Settings = Settings(explain_check=False),
    out: Path = Path("cases"),
    data: Path | None = None,
    log: Callable[[str], None] = lambda msg: None,
) -> dict[str, Any]:
    """Re-verify the cases already collected in OUT/<benchmark>/ under the current rules,
    without a new search: each case's own pair goes through the same checks a new pin must pass
    (greedy target, logit gap >= ``min_gap`` on the case path, unbatched target path a clean
    failure, contrast path a strict recovery). A case that holds is rewritten with its verdicts;
    one that does not is deleted. summary.json then describes this re-check (the earlier run's
    counts are kept under ``previous_run``)."""
    from ..cases import load_case
    from ..models import load_model
    from .recover import Candidate

    bench = get_benchmark(benchmark)
    folder = out / bench.name
    paths = sorted(folder.glob("*.toml"))
    if not paths:
        raise ReportgenError(f"no collected cases in {folder}")
    by_id = {i.id: i for i in bench.items(data)}
    previous_path = folder / "summary.json"
    previous = (
        json.loads(previous_path.read_text(encoding="utf-8")) if previous_path.exists() else {}
    )
    started = time.monotonic()
    cases = [(path, load_case(path)) for path in paths]
    runs: dict[str, _Run] = {}
    kept: list[str] = []
    unpinned: list[dict[str, Any]] = []
    not_clean: Counter[str] = Counter()
    rejected: Counter[str] = Counter()
    below_gap = continued = 0
    for path, case in cases:
        if case.model not in runs:
            runs[case.model] = _Run(
                load_model(case.model), case.model, bench, settings, folder, True, "", log
            )
        run = runs[case.model]
        run.max_new = int(case.source.get("max_new_tokens", run.max_new))
        item = by_id.get(case.source.get("item"))
        if item is None:
            raise ReportgenError(
                f"{path}: [source] item {case.source.get('item')!r} is not in {bench.name}"
            )
        head = run.head(item)
        prefix = list(case.prefix_ids or [])
        gen = Generation(prefix + [int(case.target)], "length")
        found = Found(
            Candidate(len(prefix), int(case.contrast), int(case.source.get("rank", 1)), 0.0), []
        )
        ok, reason, result = run.confirm(item, head, gen, found)
        if ok:
            write_case(path, result["case"], force=True)
            kept.append(case.id)
            continued += 2
            log(f"{case.id}: holds")
            continue
        path.unlink()
        unpinned.append({"item": item.id, "case": case.id, "reason": f"dropped: {reason}"})
        log(f"{case.id}: dropped ({reason})")
        criterion = result.get("criterion", "case path")
        if criterion == "gap":
            below_gap += 1
        else:
            continued += 2
            (not_clean if result.get("target") else rejected)[criterion] += 1
    n = len(cases)
    models = sorted(runs)
    funnel = {
        "items": n,
        "generated": n,
        "passed": 0,
        "failed": n,
        "not_clean_failure": dict(sorted(not_clean.items())),
        "not_searched": 0,
        "searched": n - sum(not_clean.values()),
        "candidates": n,
        "below_min_gap": below_gap,
        "none_at_min_gap": below_gap,
        "continuations": continued,
        "rejected": dict(sorted(rejected.items())),
        "dropped": {},
        "pinned": len(kept),
    }
    summary = {
        "benchmark": bench.name,
        "model": models[0] if len(models) == 1 else models,
        "items_available": len(by_id),
        "selection": f"re-check of the {n} cases shipped before, under the current rules",
        "items": n,
        "passed": 0,
        "failed": n,
        "pinned": len(kept),
        "pin_rate": round(len(kept) / n, 4),
        "funnel": funnel,
        "unpinned": unpinned,
        "wall_s": round(time.monotonic() - started, 1),
        "settings": {
            "min_gap": settings.min_gap,
            "max_new_tokens": settings.max_new_tokens or bench.max_new_tokens,
            "decoding": "greedy",
            "recheck": True,
        },
        "runs": [
            {"model": m, "cases": [c.id for _, c in cases if c.id in kept and c.model == m]}
            for m in models
        ],
        "previous_run": {
            k: previous.get(k)
            for k in ("selection", "items", "passed", "failed", "pinned", "settings")
            if k in previous
        },
    }
    write_summary(previous_path, summary)
    return summary
