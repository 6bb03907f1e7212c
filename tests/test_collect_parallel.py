"""`reportgen collect` on the runner's workers: --jobs 2 (local processes) and --executor ray
write the same case files and the same summary.json as --jobs 1, on two tiny models; an
interrupted parallel run resumes from its journal to the same files."""

import json
import os
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from tiny_models import save_tiny

from reportgen.cli import main
from reportgen.collect import registry
from reportgen.collect.benchmarks import Benchmark, Item, Verdict
from reportgen.collect.driver import Settings, collect
from reportgen.collect.generate import greedy
from reportgen.inputs import prepare_input
from reportgen.models import load_model
from reportgen.question import PromptSpec
from reportgen.runner import Execution
from reportgen.runner.worker import THREADS_ENV

MAX_NEW = 8
PROMPTS = [
    "list three primary colors",
    "the capital of france is",
    "a b c 1 + 2 =",
    "red blue yellow green",
    "list the primary colors .",
]
# no AttnLRP on each pin (test_collect_recover covers it in process): worker start-up stays short
SETTINGS = Settings(budget=12, top_k=3, batch_size=2, min_gap=0.0, explain_check=False)


class WordBench(Benchmark):
    """An output passes when its 4th word is ``want`` (an instance field: the instance, not
    a registry, travels to the workers)."""

    name = "toy-parallel"
    max_new_tokens = MAX_NEW

    def __init__(self, want: str = "") -> None:
        self.want = want

    def items(self, data=None):
        return [Item(f"toy/{n}", f"toy-{n}", p) for n, p in enumerate(PROMPTS, 1)]

    def stop(self, text, chat):
        return len(text.split()) >= 5

    def verify(self, item, output, chat):
        words = output.split()
        ok = len(words) > 3 and words[3] == self.want
        return Verdict(ok, f"4th word {words[3] if len(words) > 3 else None!r}")

    def source(self, item):
        return {"want": self.want}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny-collect-parallel")
    return [save_tiny("llama", root / "m0", seed=0), save_tiny("llama", root / "m1", seed=1)]


@pytest.fixture(scope="module")
def bench(models):
    """The 4th word one alternative at the 4th output token of model 0 would give."""
    loaded = load_model(models[0])
    head = list(prepare_input(loaded.tokenizer, PromptSpec(PROMPTS[0], chat=True)).token_ids)
    gen = greedy(loaded.model, [head], eos=set(), max_new_tokens=MAX_NEW, top_k=4)[0]
    return WordBench(loaded.tokenizer.decode([gen.top_ids[3][2]]).strip())


@pytest.fixture()
def registered(bench, monkeypatch):
    registry._register_builtins()
    monkeypatch.setitem(registry.BENCHMARKS, WordBench.name, lambda: bench)
    return bench


def written(out: Path) -> tuple[dict[str, bytes], dict]:
    """The case files (bytes) and summary.json without its timings (and what a resumed run
    took from the journal)."""
    folder = out / WordBench.name
    files = {p.name: p.read_bytes() for p in sorted(folder.glob("*.toml"))}
    summary = json.loads((folder / "summary.json").read_text())
    summary.pop("wall_s")
    for run in summary["runs"]:
        run.pop("wall_s"), run.pop("generation_s"), run.pop("resumed", None)
    return files, summary


@pytest.fixture(scope="module")
def reference(models, bench, tmp_path_factory):
    """--jobs 1 (in this process, one torch thread: as the workers) -- what all must write."""
    root = tmp_path_factory.mktemp("collect-reference")
    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("REPORTGEN_CACHE", str(root / "cache"))
        registry._register_builtins()
        mp.setitem(registry.BENCHMARKS, WordBench.name, lambda: bench)
        torch.set_num_threads(1)
        try:
            summary = collect(WordBench.name, models, out=root / "out", settings=SETTINGS)
        finally:
            torch.set_num_threads(threads)
    # not a vacuous comparison: failures, searches and pins on both models
    assert summary["items"] == 10 and summary["failed"] >= 6
    assert summary["funnel"]["searched"] >= 6 and summary["pinned"] >= 1
    assert summary["funnel"]["continuations"] > summary["funnel"]["searched"]
    return written(root / "out")


def test_two_local_workers_write_what_one_writes(
    models, reference, registered, tmp_path, monkeypatch
):
    monkeypatch.setenv("REPORTGEN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv(THREADS_ENV, "1")  # the spawned workers inherit it
    execution = Execution(jobs=2)
    collect(WordBench.name, models, out=tmp_path, settings=SETTINGS, execution=execution)
    assert written(tmp_path) == reference


def test_the_collect_command_passes_where_to_run(monkeypatch, tmp_path):
    import reportgen.collect.driver as runner

    calls = []
    empty = {"runs": [], "pin_rate": None, "benchmark": "b", "items": 0, "passed": 0}
    empty |= {"failed": 0, "pinned": 0, "wall_s": 0, "funnel": {"failed": 0}}
    empty["funnel"] |= {"not_clean_failure": {}, "searched": 0, "continuations": 0}
    empty["funnel"] |= {"rejected": {}, "pinned": 0}
    monkeypatch.setattr(runner, "collect", lambda *a, **kw: calls.append(kw) or empty)
    # no cluster at h:1: the address check (its own tests are in test_cli) is taken out here
    monkeypatch.setattr("reportgen.runner.ray_executor.check_ray_address", lambda address: None)
    (tmp_path / "reportgen.toml").write_text('[models.m]\ndtype = "bfloat16"\n')
    base = ["collect", "arithmetic", "--model", "m", "--out", str(tmp_path)]
    for flags, execution in [
        ([], Execution()),
        (["--jobs", "2"], Execution(jobs=2)),
        (["--executor", "ray", "--jobs", "3", "--ray-address", "h:1"], Execution("ray", 3, "h:1")),
    ]:
        result = CliRunner().invoke(main, [*base, "--dtype", "float16", *flags])
        assert result.exit_code == 0, result.output
        assert calls[-1]["execution"] == execution
        assert calls[-1]["options"].dtype == "float16"
        assert calls[-1]["project"].models["m"].dtype == "bfloat16"
    result = CliRunner().invoke(main, [*base, "--ray-address", "h:1"])
    assert result.exit_code != 0 and "--ray-address needs --executor ray" in result.output


def test_an_interrupted_collect_resumes_on_two_workers_to_the_same_files(
    models, reference, registered, tmp_path, monkeypatch
):
    import reportgen.collect.journal as journal

    monkeypatch.setenv("REPORTGEN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv(THREADS_ENV, "1")
    real_append = journal.append_jsonl
    kinds = []

    def interrupt_after_two(path, record):
        real_append(path, record)
        kinds.append(record["kind"])
        if len(kinds) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(journal, "append_jsonl", interrupt_after_two)
    with pytest.raises(KeyboardInterrupt):
        collect(
            WordBench.name, models, out=tmp_path, settings=SETTINGS, execution=Execution(jobs=2)
        )
    monkeypatch.setattr(journal, "append_jsonl", real_append)
    journals = list((tmp_path / "cache" / "collect" / WordBench.name).glob("*.jsonl"))
    assert sum(len(p.read_text().splitlines()) for p in journals) == 2
    summary = collect(
        WordBench.name, models, out=tmp_path, settings=SETTINGS, execution=Execution(jobs=2)
    )
    assert summary["items"] == 10
    # the two records journaled before the interruption are counted as taken, not redone
    resumed = [run.get("resumed", {}) for run in summary["runs"]]
    assert sum(sum(r.values()) for r in resumed) == 2
    assert written(tmp_path) == reference
    # nothing done before the interruption was done again: one record per item and kind
    journals = list((tmp_path / "cache" / "collect" / WordBench.name).glob("*.jsonl"))
    keys = [
        (p.name, r["kind"], r["item"], r.get("search", ""))
        for p in journals
        for r in map(json.loads, p.read_text().splitlines())
    ]
    assert len(keys) == len(set(keys)) > 2
    assert len(journals) == 2 and sum(k[1] == "gen" for k in keys) == 10


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray for this module (2 CPUs, no dashboard). Its workers import the toy
    benchmark's class from this folder and run one torch thread each (set before ray.init:
    Ray's workers inherit its environment)."""
    ray = pytest.importorskip("ray")
    saved = {k: os.environ.get(k) for k in ("PYTHONPATH", THREADS_ENV)}
    here = str(Path(__file__).parent)
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (here, saved["PYTHONPATH"]) if p)
    os.environ[THREADS_ENV] = "1"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def test_a_ray_collect_writes_what_a_local_one_writes(
    models, reference, registered, local_ray, tmp_path, monkeypatch
):
    monkeypatch.setenv("REPORTGEN_CACHE", str(tmp_path / "cache"))
    execution = Execution(executor="ray", jobs=2)
    collect(WordBench.name, models, out=tmp_path, settings=SETTINGS, execution=execution)
    assert written(tmp_path) == reference
    # the driver kept the journal (its records came back from the actors)
    journals = list((tmp_path / "cache" / "collect" / WordBench.name).glob("*.jsonl"))
    assert len(journals) == 2
