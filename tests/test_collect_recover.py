"""Generation and the strict-recovery search on a tiny random model with a toy verifier whose
recovering position is known; then `collect` end to end: resume, determinism, --force."""

import json
from dataclasses import replace

import pytest
import torch
from tiny_models import save_tiny_llama

from reportgen.cases import load_case
from reportgen.collect import registry
from reportgen.collect.benchmarks import Benchmark, Item, Verdict
from reportgen.collect.driver import Settings, collect
from reportgen.collect.generate import Generation, greedy, prefix_cache
from reportgen.collect.parts import fill_gaps
from reportgen.collect.recover import candidates, search
from reportgen.collect.writer import HEADER
from reportgen.inputs import prepare_input
from reportgen.models import load_model
from reportgen.pipeline import prepare_question
from reportgen.question import PromptSpec

PROMPT = "list three primary colors"
MAX_NEW = 8


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = save_tiny_llama(tmp_path_factory.mktemp("tiny-collect"))
    return folder, load_model(folder)


def _head(loaded):
    return list(prepare_input(loaded.tokenizer, PromptSpec(PROMPT, chat=True)).token_ids)


def test_batched_and_cached_generation_match_one_at_a_time(tiny):
    _, loaded = tiny
    head = _head(loaded)
    other = list(
        prepare_input(loaded.tokenizer, PromptSpec("the capital of france", chat=True)).token_ids
    )
    single = [
        greedy(loaded.model, [h], eos=set(), max_new_tokens=MAX_NEW)[0].ids for h in (head, other)
    ]
    batch = greedy(loaded.model, [head, other], eos=set(), max_new_tokens=MAX_NEW, top_k=3)
    assert [g.ids for g in batch] == single
    assert all(len(g.top_ids) == MAX_NEW and g.top_ids[0][0] == g.ids[0] for g in batch)
    # continuing from a shared prefix cache == re-encoding everything
    g = single[0]
    shared = prefix_cache(loaded.model, head + g)
    cached = greedy(
        loaded.model,
        [g[2:4], g[2:5]],
        eos=set(),
        max_new_tokens=3,
        shared=shared,
        shared_length=len(head) + 2,
    )
    assert [c.ids for c in cached] == [g[4:7], g[5:8]]


def _known_recovery(loaded, position=3, rank=2):
    """A toy verifier that passes exactly when output[position] is the rank-th alternative."""
    head = _head(loaded)
    gen = greedy(loaded.model, [head], eos=set(), max_new_tokens=MAX_NEW, top_k=5)[0]
    want = gen.top_ids[position][rank]
    return head, gen, want


@pytest.mark.parametrize("reuse", [True, False])
def test_search_finds_the_known_position_within_budget(tiny, reuse):
    _, loaded = tiny
    position = 3
    head, gen, want = _known_recovery(loaded, position)
    cands = candidates(gen, top_k=4, skip_ids=set())
    calls = []

    def passes(found):
        calls.append(found)
        ids = found.output_ids
        return len(ids) > position and ids[position] == want

    result = search(
        loaded.model,
        head,
        gen,
        cands,
        passes=passes,
        eos=set(),
        max_new_tokens=MAX_NEW,
        budget=len(cands),
        batch_size=3,
        reuse_prefix=reuse,
    )
    assert result.found and result.found[0].candidate.position == position
    assert result.found[0].candidate.alternative == want
    assert result.tried <= len(cands) and len(calls) == result.tried
    # the recovering output continues greedily after the alternative
    out = result.found[0].output_ids
    assert out[:position] == gen.ids[:position] and len(out) == MAX_NEW
    assert result.found[0].stopped == "length"  # cut by the token budget: reported as such


def test_search_never_exceeds_the_budget(tiny):
    _, loaded = tiny
    head, gen, want = _known_recovery(loaded)
    cands = candidates(gen, top_k=4, skip_ids=set())
    index = next(i for i, c in enumerate(cands) if c.alternative == want and c.position == 3)
    for budget in (1, max(1, index)):
        calls = []
        result = search(
            loaded.model,
            head,
            gen,
            cands,
            passes=lambda found, calls=calls: calls.append(1) or False,
            eos=set(),
            max_new_tokens=MAX_NEW,
            budget=budget,
            batch_size=4,
        )
        assert result.tried == len(calls) == min(budget, len(cands)) and not result.found
    result = search(
        loaded.model,
        head,
        gen,
        cands,
        passes=lambda found: found.output_ids[3] == want,
        eos=set(),
        max_new_tokens=MAX_NEW,
        budget=index + 1,
        batch_size=4,
    )
    assert result.found and result.tried <= index + 1


def test_candidates_order_and_filters():
    gen = Generation(
        [5, 6, 7],
        "length",
        [[5, 1, 2], [6, 3, 4], [7, 8, 9]],
        [[3.0, 1.0, 0.0], [2.0, 1.9, 0.5], [5.0, 4.0, 1.0]],
    )
    cands = candidates(gen, top_k=2, skip_ids={9})
    assert [(c.position, c.alternative) for c in cands] == [(1, 3), (2, 8), (1, 4), (0, 1), (0, 2)]
    assert [c.position for c in candidates(gen, top_k=2, skip_ids=set(), last_position=0)] == [0, 0]
    first = candidates(
        gen, top_k=2, skip_ids=set(), priority=lambda p, chosen, alt: 0 if alt == 2 else 1
    )
    assert (first[0].position, first[0].alternative) == (0, 2)
    # the clean-case threshold: only pairs the model separates by at least min_gap
    clear = candidates(gen, top_k=2, skip_ids={9}, min_gap=1.0)
    assert [(c.position, c.alternative, c.gap) for c in clear] == [
        (2, 8, 1.0),
        (1, 4, 1.5),
        (0, 1, 2.0),
        (0, 2, 3.0),
    ]
    assert candidates(gen, top_k=2, skip_ids=set(), min_gap=4.5) == []


class ToyBench(Benchmark):
    """Passes when the output's 4th token is the word ``want``."""

    name = "toy-recovery"
    max_new_tokens = MAX_NEW
    want = ""

    def items(self, data=None):
        return [Item("toy/1", "toy-1", PROMPT), Item("toy/2", "toy-2", PROMPT + " .")]

    def stop(self, text, chat):
        return len(text.split()) >= 5  # the output finishes before the token budget

    def verify(self, item, output, chat):
        words = output.split()
        ok = len(words) > 3 and words[3] == self.want
        return Verdict(ok, f"4th word {words[3] if len(words) > 3 else None!r}")

    def source(self, item):
        return {"want": self.want}


@pytest.fixture()
def toy(tiny, monkeypatch):
    folder, loaded = tiny
    _, gen, want = _known_recovery(loaded)
    ToyBench.want = loaded.tokenizer.decode([want])
    registry._register_builtins()
    monkeypatch.setitem(registry.BENCHMARKS, ToyBench.name, ToyBench)
    return folder, loaded


def test_collect_writes_cases_that_survive_the_case_path(toy, tmp_path):
    folder, loaded = toy
    settings = Settings(budget=40, top_k=4, batch_size=4, min_gap=0.0)
    summary = collect(ToyBench.name, [folder], out=tmp_path / "a", settings=settings)
    assert summary["items"] == 2 and summary["failed"] == 2
    assert summary["pinned"] >= 1
    funnel = summary["funnel"]
    assert funnel["items"] == 2 and funnel["failed"] == 2 and funnel["searched"] == 2
    assert funnel["pinned"] == summary["pinned"] and funnel["below_min_gap"] == 0
    files = sorted((tmp_path / "a" / ToyBench.name).glob("*.toml"))
    assert [f.stem for f in files] == summary["runs"][0]["cases"]
    for f in files:
        case = load_case(f)
        assert (
            case.source["benchmark"] == ToyBench.name
            and case.question.prompt.prefix_ids is not None
        )
        prepared = prepare_question(loaded, case.question)
        with torch.no_grad():
            logits = loaded.model(input_ids=torch.tensor([list(prepared.inputs.token_ids)])).logits[
                0, -1
            ]
        assert int(logits.argmax()) == case.question.target != case.question.contrast
        assert ToyBench().verify(None, case.source["recovering_output"], True).passed
        assert not ToyBench().verify(None, case.source["failing_output"], True).passed
        assert case.source["contrast_stopped"] == "stop" and case.source["target_stopped"] == "stop"
        assert case.source["verdict_target"].startswith("fails: 4th word")
        assert case.source["verdict_contrast"].startswith("recovers: 4th word")
        assert f"recovers -- {case.source['recovering']}" in case.description
    data = json.loads((tmp_path / "a" / ToyBench.name / "summary.json").read_text())
    assert data["pinned"] == summary["pinned"] and "wall_s" in data
    assert "resumed" not in summary["runs"][0]  # a first run takes nothing from a journal

    # resume: the journal has every item, so nothing is generated or searched again
    calls = []
    import reportgen.collect.work as runner  # the generation batches run there (on a worker)

    orig_generate = runner.generate_items

    def counting_generate(*args, **kwargs):
        finished = kwargs["finished"]
        kwargs["finished"] = lambda i, g: calls.append(i) or finished(i, g)
        return orig_generate(*args, **kwargs)

    runner.generate_items = counting_generate
    try:
        again = collect(ToyBench.name, [folder], out=tmp_path / "b", settings=settings)
    finally:
        runner.generate_items = orig_generate
    assert calls == [] and again["runs"][0]["continuations"] == summary["runs"][0]["continuations"]
    # its summary says its few seconds are those of a run that took everything from the journal
    assert again["runs"][0]["resumed"] == {"generated": 2, "searched": 2}
    # determinism: the same files, byte for byte
    for f in files:
        assert (tmp_path / "b" / ToyBench.name / f.name).read_bytes() == f.read_bytes()


def test_collect_resume_after_interruption_skips_finished_items(toy, tmp_path, monkeypatch):
    folder, _ = toy
    from reportgen.collect import generate as gen_module

    real_append = gen_module.append_jsonl
    written = []

    def crash_after_first(path, record):
        real_append(path, record)
        written.append(record["item"])
        if record["kind"] == "gen" and len(written) == 1:
            raise KeyboardInterrupt

    import reportgen.collect.journal as journal  # the driver's journal writes
    import reportgen.collect.work as runner  # the generation batches run there (on a worker)

    monkeypatch.setattr(journal, "append_jsonl", crash_after_first)
    settings = Settings(budget=4, top_k=2, batch_size=1, explain_check=False, min_gap=0.0)
    with pytest.raises(KeyboardInterrupt):
        collect(ToyBench.name, [folder], out=tmp_path, settings=settings)
    monkeypatch.setattr(journal, "append_jsonl", real_append)
    finished = []
    orig = runner.generate_items

    def spy(model, heads, keys, **kwargs):
        inner = kwargs["finished"]
        kwargs["finished"] = lambda i, g: finished.append(keys[i]) or inner(i, g)
        return orig(model, heads, keys, **kwargs)

    monkeypatch.setattr(runner, "generate_items", spy)
    summary = collect(ToyBench.name, [folder], out=tmp_path, settings=settings)
    assert finished == ["toy/2"]  # item toy/1 was done before the interruption
    assert summary["items"] == 2
    assert summary["runs"][0]["resumed"] == {"generated": 1, "searched": 0}


def test_force_protects_hand_edited_cases(toy, tmp_path):
    folder, _ = toy
    settings = Settings(budget=40, top_k=4, batch_size=4, explain_check=False, min_gap=0.0)
    summary = collect(ToyBench.name, [folder], out=tmp_path, settings=settings)
    case_id = summary["runs"][0]["cases"][0]
    path = tmp_path / ToyBench.name / f"{case_id}.toml"
    original = path.read_text()
    assert original.startswith(HEADER)
    edited = original.replace('pattern = ""', 'pattern = "hand-labelled"')
    path.write_text(edited)
    again = collect(ToyBench.name, [folder], out=tmp_path, settings=settings)
    assert again["runs"][0]["files"][case_id] == "kept" and path.read_text() == edited
    forced = collect(ToyBench.name, [folder], out=tmp_path, settings=settings, force=True)
    assert forced["runs"][0]["files"][case_id] == "written" and path.read_text() == original
    untouched = collect(ToyBench.name, [folder], out=tmp_path, settings=settings)
    assert untouched["runs"][0]["files"][case_id] == "unchanged"


def test_min_gap_leaves_out_the_near_ties_and_the_funnel_says_so(toy, tmp_path):
    """The tiny random model is nearly indifferent everywhere (gaps << 1): at the study's
    threshold nothing is searched-and-pinned, and the funnel counts why; at 0 it pins."""
    folder, _ = toy
    strict = Settings(budget=40, top_k=4, batch_size=4, explain_check=False)
    assert strict.min_gap == 1.0
    summary = collect(ToyBench.name, [folder], out=tmp_path, settings=strict)
    funnel = summary["funnel"]
    assert summary["pinned"] == 0 and funnel["searched"] == 2 and funnel["continuations"] == 0
    assert funnel["none_at_min_gap"] == 2 and funnel["below_min_gap"] == funnel["candidates"] > 0
    assert all("logit gap >= 1" in u["reason"] for u in summary["unpinned"])
    assert not list((tmp_path / ToyBench.name).glob("*.toml"))
    assert json.loads((tmp_path / ToyBench.name / "summary.json").read_text())["funnel"] == funnel


class CutToyBench(ToyBench):
    """The same verifier without a stop rule: every output runs into the token budget."""

    name = "toy-cut"

    def stop(self, text, chat):
        return False


def test_an_output_cut_by_the_token_budget_is_no_clean_failure(toy, tmp_path, monkeypatch):
    folder, _ = toy
    monkeypatch.setitem(registry.BENCHMARKS, CutToyBench.name, CutToyBench)
    settings = Settings(budget=40, top_k=4, batch_size=4, explain_check=False, min_gap=0.0)
    summary = collect(CutToyBench.name, [folder], out=tmp_path, settings=settings)
    funnel = summary["funnel"]
    assert summary["failed"] == 2 and summary["pinned"] == 0 and funnel["searched"] == 0
    assert funnel["not_clean_failure"] == {"target not finished": 2}
    assert all("no clean failure" in u["reason"] for u in summary["unpinned"])


def test_recheck_keeps_the_cases_that_hold_and_deletes_the_others(toy, tmp_path):
    from reportgen.collect.driver import recheck

    folder, _ = toy
    loose = Settings(budget=40, top_k=4, batch_size=4, explain_check=False, min_gap=0.0)
    collected = collect(ToyBench.name, [folder], out=tmp_path, settings=loose)
    ids = collected["runs"][0]["cases"]
    assert ids
    again = recheck(ToyBench.name, settings=loose, out=tmp_path)
    assert again["pinned"] == len(ids) and again["funnel"]["continuations"] == 2 * len(ids)
    for case_id in ids:
        case = load_case(tmp_path / ToyBench.name / f"{case_id}.toml")
        assert case.source["verdict_contrast"].startswith("recovers: ")
    assert again["previous_run"]["pinned"] == collected["pinned"]
    # at the study's threshold the tiny model's near-ties do not hold: deleted, and said why
    strict = recheck(ToyBench.name, settings=Settings(explain_check=False), out=tmp_path)
    assert strict["pinned"] == 0 and strict["funnel"]["below_min_gap"] == len(ids)
    assert not list((tmp_path / ToyBench.name).glob("*.toml"))
    assert all("logit gap on the case path" in u["reason"] for u in strict["unpinned"])
    summary = json.loads((tmp_path / ToyBench.name / "summary.json").read_text())
    assert summary["funnel"] == strict["funnel"] and summary["settings"]["recheck"]


def test_recheck_keeps_hand_edits_unless_forced(toy, tmp_path):
    """Issue 31: the header of a collected case says edits are kept; --recheck would rewrite (or
    delete) an edited file, so without --force it refuses before any work, naming the file."""
    from reportgen.collect.driver import recheck
    from reportgen.errors import ReportgenError

    folder, _ = toy
    loose = Settings(budget=40, top_k=4, batch_size=4, explain_check=False, min_gap=0.0)
    ids = collect(ToyBench.name, [folder], out=tmp_path, settings=loose)["runs"][0]["cases"]
    assert ids
    bench = tmp_path / ToyBench.name
    edited = bench / f"{ids[0]}.toml"
    lines = edited.read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("title = "))
    lines[at] = 'title = "My own title"'
    lines.insert(at + 1, 'notes = "seen in the lab meeting"')
    edited.write_text("\n".join(lines) + "\n")
    before = {p.name: p.read_bytes() for p in bench.iterdir()}
    with pytest.raises(ReportgenError) as info:
        recheck(ToyBench.name, settings=loose, out=tmp_path)
    message = str(info.value)
    assert str(edited) in message and "--force" in message and "\n" not in message
    assert {p.name: p.read_bytes() for p in bench.iterdir()} == before  # nothing rewritten
    assert load_case(edited).title == "My own title"
    # --force re-checks it under the current rules (the edit is then rewritten)
    again = recheck(ToyBench.name, settings=loose, out=tmp_path, force=True)
    assert again["pinned"] == len(ids)
    assert load_case(edited).title != "My own title"
    # a file without the header (written by hand into the folder) is an edit too
    edited.write_text(edited.read_text().split("\n", 1)[1])
    with pytest.raises(ReportgenError, match="edited by hand"):
        recheck(ToyBench.name, settings=loose, out=tmp_path)


def test_collect_goes_on_without_its_journal_when_the_cache_cannot_be_written(
    toy, tmp_path, monkeypatch, caplog
):
    """Issue 31: a cache that cannot be written (here: below a file) is one warning; the
    collection still finishes and writes its cases."""
    import logging

    folder, _ = toy
    blocker = tmp_path / "notes.txt"
    blocker.write_text("mine")
    monkeypatch.setenv("REPORTGEN_CACHE", str(blocker / "cache"))
    loose = Settings(budget=40, top_k=4, batch_size=4, explain_check=False, min_gap=0.0)
    with caplog.at_level(logging.WARNING, logger="reportgen"):
        summary = collect(ToyBench.name, [folder], out=tmp_path / "out", settings=loose)
    assert summary["pinned"] >= 1 and blocker.read_text() == "mine"
    said = [r.getMessage() for r in caplog.records if r.name == "reportgen"]
    assert len(said) == 1 and "cannot be written (Not a directory)" in said[0], said


def test_recheck_runs_where_the_runtime_options_say(toy, tmp_path, monkeypatch):
    """--recheck places its model as collect does: the flags, else the project file's table;
    the summary records where the pairs were verified."""
    import pytest as _pytest

    from reportgen import models as models_mod
    from reportgen.collect.driver import recheck
    from reportgen.errors import ReportgenError
    from reportgen.project import ModelSettings, Project
    from reportgen.runner import RuntimeOptions

    folder, _ = toy
    loose = Settings(budget=40, top_k=4, batch_size=4, explain_check=False, min_gap=0.0)
    ids = collect(ToyBench.name, [folder], out=tmp_path, settings=loose)["runs"][0]["cases"]
    assert ids
    calls: list[dict] = []
    real_load = models_mod.load_model

    def recording_load(spec, **kwargs):
        calls.append({"spec": spec, **kwargs})
        return real_load(spec)  # the toy's pairs are verified in float32 either way

    monkeypatch.setattr(models_mod, "load_model", recording_load)
    lines: list[str] = []
    again = recheck(
        ToyBench.name,
        settings=loose,
        out=tmp_path,
        log=lines.append,
        options=RuntimeOptions(device="cpu", dtype="bfloat16"),
    )
    assert calls == [{"spec": str(folder), "device": "cpu", "dtype": "bfloat16", "quantize": None}]
    assert again["pinned"] == len(ids) and f"{folder}: on cpu, bfloat16" in lines
    assert again["runs"][0]["runtime"] == {
        "device": "cpu",
        "dtype": "bfloat16",
        "quantization": "none",
    }
    calls.clear()
    project = Project(models={str(folder): ModelSettings(dtype="float16")})
    recheck(ToyBench.name, settings=loose, out=tmp_path, project=project)
    assert calls[0]["dtype"] == "float16"  # the project file's table when no flag is given
    if not torch.cuda.is_available():
        with _pytest.raises(ReportgenError, match="CUDA is not available"):
            recheck(
                ToyBench.name,
                settings=loose,
                out=tmp_path,
                options=RuntimeOptions(device="cuda"),
            )
    # nothing was deleted by the refused run
    assert sorted(p.stem for p in (tmp_path / ToyBench.name).glob("*.toml")) == sorted(ids)


def test_a_failures_continuations_go_in_one_batch(toy, tmp_path, monkeypatch):
    """By default a failure's continuations are generated together (up to 32: a CPU decoding
    step streams every weight whatever the batch); on the toy, batches of 2 find the same first
    recovery of each failure (in general padding can move a near-tie, so the batch is part of
    the search's journal key)."""
    from reportgen.collect import recover

    folder, _ = toy
    rows: list[int] = []
    real_greedy = recover.greedy

    def counting_greedy(model, seqs, **kwargs):
        rows.append(len(seqs))
        return real_greedy(model, seqs, **kwargs)

    monkeypatch.setattr(recover, "greedy", counting_greedy)
    pins, batches = [], []
    for search_batch_size in (None, 2):
        rows.clear()
        settings = Settings(
            budget=40,
            top_k=4,
            batch_size=4,
            min_gap=0.0,
            explain_check=False,
            search_batch_size=search_batch_size,
        )
        out = tmp_path / f"b{search_batch_size}"
        # a journal of its own, so that each run searches afresh
        monkeypatch.setenv("REPORTGEN_CACHE", str(out / "cache"))
        summary = collect(ToyBench.name, [folder], out=out, settings=settings)
        assert summary["settings"]["search_batch_size"] == (search_batch_size or 32)
        assert summary["funnel"]["continuations"] > 0 and summary["pinned"] >= 1
        batches.append(max(rows))
        pins.append(
            {f.stem: load_case(f).question for f in sorted((out / ToyBench.name).glob("*.toml"))}
        )
    # the whole budget (capped at 32), not the generation batch of 4; against pairs
    assert batches[1] == 2 and 4 < batches[0] <= 32
    assert pins[0] and pins[0] == pins[1]


def test_a_run_on_the_items_a_timed_out_run_left_fills_its_summary(toy, tmp_path, monkeypatch):
    """A time limit leaves items unreached; a run on just those items (another machine, no
    journal) folds into the same summary.json, and the parts add up to one whole run."""
    folder, _ = toy
    settings = Settings(budget=40, top_k=4, batch_size=1, explain_check=False, min_gap=0.0)
    monkeypatch.setenv("REPORTGEN_CACHE", str(tmp_path / "cache-of-the-whole-run"))
    whole = collect(ToyBench.name, [folder], out=tmp_path / "whole", settings=settings)
    assert whole["pinned"] >= 1

    monkeypatch.setenv("REPORTGEN_CACHE", str(tmp_path / "cache-of-the-parts"))  # no journal
    parts = tmp_path / "parts"
    timed_out = collect(
        ToyBench.name, [folder], out=parts, settings=replace(settings, time_limit=0.0)
    )
    assert timed_out["funnel"]["generated"] == 0
    assert [u["reason"] for u in timed_out["unpinned"]] == [
        "not generated: the time limit was reached"
    ] * 2
    first = collect(ToyBench.name, [folder], items=["toy/1"], out=parts, settings=settings)
    assert first["items"] == 2 and first["funnel"]["generated"] == 1
    assert [u["item"] for u in first["unpinned"] if u["reason"].startswith("not generated")] == [
        "toy/2"
    ]
    merged = collect(ToyBench.name, [folder], items=["toy/2"], out=parts, settings=settings)
    on_disk = json.loads((parts / ToyBench.name / "summary.json").read_text())
    assert on_disk == merged
    assert merged["funnel"] == whole["funnel"]
    for key in ("items", "passed", "failed", "pinned", "pin_rate"):
        assert merged[key] == whole[key], key
    assert sorted(u["item"] for u in merged["unpinned"]) == sorted(
        u["item"] for u in whole["unpinned"]
    )
    assert [run["selection"] for run in merged["runs"]] == ["all", "items toy/1", "items toy/2"]
    assert sorted(c for run in merged["runs"] for c in run["cases"]) == sorted(
        f.stem for f in (parts / ToyBench.name).glob("*.toml")
    )
    assert sum(run["items"] for run in merged["runs"]) == 2

    # an item that was searched already is not a gap: that run's summary replaces the old one
    again = collect(ToyBench.name, [folder], items=["toy/1"], out=parts, settings=settings)
    assert again["items"] == 1 and len(again["runs"]) == 1
    # nor is a part run with other search settings
    assert (
        fill_gaps(merged, again | {"settings": again["settings"] | {"budget": 7}}, ["toy/1"])
        is None
    )


def _summary(selection, runs, settings):
    return {
        "benchmark": "b",
        "model": "m",
        "items_available": 3,
        "selection": selection,
        "wall_s": 1.0,
        "settings": settings,
        "runs": runs,
    }


def test_fill_gaps_takes_a_not_searched_failure_out_of_the_run_that_left_it():
    """Item c failed but was not searched before the time limit; the part run searches it."""
    from reportgen.collect.funnel import run_funnel

    settings = {k: 1 for k in ("budget", "top_k", "batch_size", "search_batch_size")} | {
        "max_new_tokens": 8,
        "min_gap": 1.0,
        "time_limit": 5.0,
    }
    searched = {"kind": "pin", "candidates": 3, "below_min_gap": 1, "tried": 2, "rejected": {}}
    gap = {"criterion": "time limit"}
    first = {
        "model": "m",
        "items": 3,
        "passed": 1,
        "failed": 2,
        "pinned": 1,
        "funnel": run_funnel(3, 3, 2, [searched, gap], 1),
        "cases": ["b-2"],
        "unpinned": [{"item": "b/3", "reason": "not searched: the time limit was reached"}],
    }
    second = {
        "model": "m",
        "items": 1,
        "passed": 0,
        "failed": 1,
        "pinned": 0,
        "funnel": run_funnel(1, 1, 1, [searched | {"tried": 5}], 0),
        "cases": [],
        "unpinned": [{"item": "b/3", "reason": "no recovering pair within the budget"}],
    }
    previous = _summary("all", [first], settings)
    new = _summary("items b/3", [second], settings | {"time_limit": None})
    merged = fill_gaps(previous, new, ["b/3"])
    assert merged["items"] == 3 and merged["passed"] == 1 and merged["failed"] == 2
    assert merged["pinned"] == 1 and merged["pin_rate"] == 0.5
    f = merged["funnel"]
    assert (f["items"], f["generated"], f["failed"], f["not_searched"], f["searched"]) == (
        3,
        3,
        2,
        0,
        2,
    )
    assert f["continuations"] == 7 and f["candidates"] == 6
    assert [u["reason"] for u in merged["unpinned"]] == ["no recovering pair within the budget"]
    assert [(r["items"], r["failed"], r["time_limit"]) for r in merged["runs"]] == [
        (2, 1, 5.0),
        (1, 1, None),
    ]
    # b/3 is no gap any more: filling it again would count it twice
    assert fill_gaps(merged, new, ["b/3"]) is None


def test_collect_compare_and_id_suffix_restate_every_case_and_recheck_keeps_them(toy, tmp_path):
    from reportgen.collect.driver import recheck
    from reportgen.collect.writer import is_hand_edited

    folder, _ = toy
    loose = Settings(budget=40, top_k=4, batch_size=4, explain_check=False, min_gap=0.0)
    plain = collect(ToyBench.name, [folder], out=tmp_path / "plain", settings=loose)
    others = ["smollm2-135m-instruct", "qwen2.5-coder-0.5b-instruct"]
    summary = collect(
        ToyBench.name,
        [folder],
        out=tmp_path,
        settings=loose,
        compare=[*others, folder],
        id_suffix="-tiny",
    )
    ids = summary["runs"][0]["cases"]
    assert ids and ids == [f"{i}-tiny" for i in plain["runs"][0]["cases"]]
    assert summary["settings"]["compare"] == [*others, folder]
    assert summary["settings"]["id_suffix"] == "-tiny"
    assert sorted(p.stem for p in (tmp_path / ToyBench.name).glob("*.toml")) == sorted(ids)
    for case_id in ids:
        path = tmp_path / ToyBench.name / f"{case_id}.toml"
        case = load_case(path)
        assert case.id == case_id
        assert case.compare == tuple(others)  # the case's own model is not compared with itself
        assert not is_hand_edited(path)  # written by collect: a re-collect may replace it
        same = load_case(tmp_path / "plain" / ToyBench.name / f"{case_id[: -len('-tiny')]}.toml")
        assert (case.question, case.source) == (same.question, same.source)
    recheck(ToyBench.name, settings=loose, out=tmp_path)
    for case_id in ids:
        case = load_case(tmp_path / ToyBench.name / f"{case_id}.toml")
        assert case.compare == tuple(others) and case.id == case_id
