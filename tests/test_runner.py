"""The runner: runtime settings in the cache key, --jobs N = --jobs 1, a killed worker's case
retried, a failing case reported while the others build (local processes; Ray in test_runner_ray)."""

import json
import os

import pytest
import torch
from click.testing import CliRunner
from tiny_models import save_tiny_llama
from worker_faults import FAULT_DIR_ENV, FAULTS

from reportgen.build import BuildReport, build, compute_results, render_site
from reportgen.cases import load_cases
from reportgen.cli import main
from reportgen.errors import ReportgenError
from reportgen.project import Project, load_project
from reportgen.runner import Execution, ModelRuntime, RuntimeOptions, resolve_runtime
from reportgen.runner.worker import THREADS_ENV

CASE = """
id = "{id}"
title = "Tiny case {id}"
model = "{model}"
prompt = "{prompt}"
target = "paris"
contrast = "lyon"
bos = true
segments = {{ question = [{start}, {end}] }}
"""

PROMPTS = {
    "a": "the capital of france is",
    "b": "list three primary colors",
    "c": "a b c 1 + 2 =",
}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_llama(tmp_path_factory.mktemp("tiny-runner"))


def write_cases(folder, model_dir, names=tuple(PROMPTS), bad_segment=()):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        end = 40 if name in bad_segment else 3
        (folder / f"{name}.toml").write_text(
            CASE.format(id=f"case-{name}", model=model_dir, prompt=PROMPTS[name], start=1, end=end)
        )
    return folder


def site_files(out):
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def reference(model_dir, tmp_path_factory):
    """The in-process (--jobs 1) build every other executor must reproduce byte for byte."""
    root = tmp_path_factory.mktemp("reference")
    cases = write_cases(root / "cases", model_dir)
    out = root / "site"
    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("REPORTGEN_CACHE", str(root / "cache"))
        torch.set_num_threads(1)  # the workers of the other tests run one thread each too
        try:
            report = build([cases], out, pdf=False, progress=False)
        finally:
            torch.set_num_threads(threads)
    assert report.built == ["case-a", "case-b", "case-c"] and not report.failures
    return site_files(out)


def test_runtime_settings_flag_then_project_then_default(tmp_path):
    project_file = tmp_path / "reportgen.toml"
    project_file.write_text('[models.big]\ndtype = "bfloat16"\ndevice = "cpu"\n')
    project = load_project(project_file)
    assert resolve_runtime("small", RuntimeOptions(), project) == ModelRuntime("cpu", "float32")
    assert resolve_runtime("big", RuntimeOptions(), project) == ModelRuntime("cpu", "bfloat16")
    assert resolve_runtime("big", RuntimeOptions(dtype="float16"), project).dtype == "float16"
    # auto = CUDA where there is one (a Ray driver asks the cluster)
    assert resolve_runtime("small", RuntimeOptions(), has_cuda=True).device == "cuda"
    assert resolve_runtime("small", RuntimeOptions(device="auto"), has_cuda=False).device == "cpu"
    with pytest.raises(ReportgenError, match="--4bit: 4-bit runs only on CUDA"):
        resolve_runtime("small", RuntimeOptions(quantization="4bit"), has_cuda=False)
    project_file.write_text('[models.big]\nquantization = "4bit"\ndevice = "cpu"\n')
    with pytest.raises(ReportgenError, match=r"reportgen.toml: models.big.quantization"):
        resolve_runtime("big", RuntimeOptions(), load_project(project_file))
    with pytest.raises(ReportgenError, match="--device: 'gpu' is not one of"):
        RuntimeOptions(device="gpu")
    # what changes numbers keys the cache; the CUDA index does not
    assert ModelRuntime("cuda:1", "float32").key() == ModelRuntime("cuda", "float32").key()
    assert ModelRuntime("cpu", "bfloat16").key() != ModelRuntime("cpu", "float32").key()
    assert Project().models == {}


def test_bfloat16_is_not_served_from_a_float32_cache_entry(model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("REPORTGEN_CACHE", str(tmp_path / "cache"))
    cases = write_cases(tmp_path / "project" / "cases", model_dir, names=("a",))
    out = tmp_path / "site"

    def build_cli(*flags):
        result = CliRunner().invoke(
            main, ["build", str(cases), "--out", str(out), "--no-pdf", "--jobs", "1", *flags]
        )
        assert result.exit_code == 0, result.output
        data = json.loads((out / "cases" / "case-a" / "data.json").read_text())
        return result.output, data

    output, fp32 = build_cli()
    assert "1 computed, 0 from cache" in output and fp32["environment"]["dtype"] == "float32"
    assert fp32["environment"]["device"] == "cpu"
    assert fp32["environment"]["quantization"] == "none"
    output, bf16 = build_cli("--dtype", "bfloat16")
    assert "1 computed, 0 from cache" in output and bf16["environment"]["dtype"] == "bfloat16"
    assert bf16["attribution"]["explained"] != fp32["attribution"]["explained"]
    output, again = build_cli()
    assert "0 computed, 1 from cache" in output and again == fp32
    # the project file's [models.NAME] sets the dtype too, and hits the bfloat16 entry
    (tmp_path / "project" / "reportgen.toml").write_text(
        f'[models."{model_dir}"]\ndtype = "bfloat16"\n'
    )
    output, from_project = build_cli()
    assert "0 computed, 1 from cache" in output
    assert from_project["attribution"] == bf16["attribution"]


def test_a_result_whose_embedded_model_the_build_fetched_is_cached_under_the_fetched_key(
    model_dir, tmp_path, monkeypatch
):
    """A fresh machine's first build fetches the compared embedded model (the 1.5B of the Qwen
    cases, Gemma 3 of the code cases) while it runs. Its result was stored under the key of an
    unfetched model, so the second build missed it and computed the case again (4 cases on
    2026-12-04); it is stored under the key the fetched weights give."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from reportgen import cache_keys, models

    monkeypatch.setenv("REPORTGEN_CACHE", str(tmp_path / "cache"))

    def fake_gguf(work):
        (work / "fake.gguf").write_bytes(b"not read")
        return work / "fake.gguf"

    def load_tiny(path):
        return AutoModelForCausalLM.from_pretrained(model_dir), AutoTokenizer.from_pretrained(
            model_dir
        )

    entry = models.EmbeddedModel("tiny-embedded", "the tiny llama", "a test", fake_gguf)
    embedded = {**models.EMBEDDED_MODELS, "tiny-embedded": entry}
    monkeypatch.setattr(models, "EMBEDDED_MODELS", embedded)
    monkeypatch.setattr(cache_keys, "EMBEDDED_MODELS", embedded)
    monkeypatch.setattr(models, "_load_gguf", load_tiny)
    cases = tmp_path / "cases"
    cases.mkdir()
    text = CASE.format(id="case-a", model=model_dir, prompt=PROMPTS["a"], start=1, end=3)
    (cases / "a.toml").write_text(text + 'compare = ["tiny-embedded"]\n')
    assert cache_keys.model_identity("tiny-embedded") == "tiny-embedded" + cache_keys.UNFETCHED

    outputs = []
    for _ in range(2):
        result = CliRunner().invoke(
            main, ["build", str(cases), "--out", str(tmp_path / "site"), "--no-pdf", "--jobs", "1"]
        )
        assert result.exit_code == 0, result.output
        outputs.append(result.output)
    assert models.is_fetched("tiny-embedded")
    assert "1 computed, 0 from cache" in outputs[0]
    assert "0 computed, 1 from cache" in outputs[1]


def test_4bit_on_the_cpu_is_refused_in_one_line(model_dir, tmp_path):
    cases = write_cases(tmp_path / "cases", model_dir, names=("a",))
    result = CliRunner().invoke(
        main, ["build", str(cases), "--out", str(tmp_path / "site"), "--device", "cpu", "--4bit"]
    )
    assert result.exit_code == 1
    assert "--4bit runs only on CUDA" in result.output and "Traceback" not in result.output
    help_text = CliRunner().invoke(main, ["build", "--help"]).output
    for option in ("--device", "--dtype", "--4bit", "--jobs", "--executor", "--ray-address"):
        assert option in help_text


def test_two_workers_build_what_one_builds_and_survive_a_killed_worker(
    model_dir, reference, tmp_path, monkeypatch
):
    monkeypatch.setenv("REPORTGEN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv(THREADS_ENV, "1")  # as the reference: equal thread counts, equal bits
    faults = tmp_path / "faults"
    faults.mkdir()
    (faults / "b.toml.die-once").touch()  # the worker computing b dies; b is retried
    monkeypatch.setenv(FAULT_DIR_ENV, str(faults))
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(p for p in (str(FAULTS), os.environ.get("PYTHONPATH")) if p)
    )
    cases, _ = load_cases([write_cases(tmp_path / "cases", model_dir)])
    out = tmp_path / "site"
    report = BuildReport(out=out)
    steps = []
    results = compute_results(
        cases,
        use_cache=True,
        keep_going=False,
        command="reportgen build",
        report=report,
        execution=Execution(jobs=2),
        on_progress=lambda case, args: steps.append((case.id, args[0])),
    )
    render_site(results, out, report.failures, pdf=False, single_file=False)
    assert not (faults / "b.toml.die-once").exists()  # the worker really died once
    assert report.built == ["case-a", "case-b", "case-c"] and not report.failures
    assert site_files(out) == reference
    # the workers' progress reached the driver through the queue
    for case in ("case-a", "case-b", "case-c"):
        names = list(dict.fromkeys(s for c, s in steps if c == case))  # steps report (done, total)
        # the graph's trace is the attribution's pass: the attribution is read after it
        assert names[:4] == ["graph", "attribution", "interventions", "faithfulness"]


def test_the_recorded_command_leaves_out_where_it_ran(monkeypatch):
    from reportgen.cli.common import command_line

    argv = ["reportgen", "build", "cases", "--jobs", "2", "--executor=ray", "--dtype", "bfloat16"]
    monkeypatch.setattr("sys.argv", argv)
    assert command_line() == "reportgen build cases --dtype bfloat16"


def test_a_worker_running_other_code_refuses_the_job(tmp_path):
    from reportgen.runner.jobs import Job
    from reportgen.runner.worker import CaseWorker

    def no_model(*args, **kwargs):
        raise AssertionError("the check comes before any model load")

    path = tmp_path / "a.toml"
    text = CASE.format(id="case-a", model="m", prompt="p", start=1, end=2)
    job = Job(0, str(path), text, "m", {"m": ModelRuntime("cpu")}, "reportgen build", "0ther")
    outcome = CaseWorker(name="w1", loader=no_model).run(job)
    assert outcome.result is None
    assert "runs reportgen code" in outcome.error and "the driver 0ther" in outcome.error
