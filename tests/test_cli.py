"""The CLI end to end on a tiny local model: JSON output and one-line errors."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from tiny_models import save_tiny_llama

from reportgen.cli import main


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_llama(tmp_path_factory.mktemp("tiny-cli"))


def paris_flags(model_dir):
    """The question most CLI tests ask: paris vs lyon after 'the capital of france is'."""
    prompt = "the capital of france is"
    return [
        "--model",
        model_dir,
        "--prompt",
        prompt,
        "--target",
        "paris",
        "--contrast",
        "lyon",
        "--bos",
    ]


def run(*args):
    return CliRunner().invoke(main, list(args))


def test_attribute_writes_the_documented_json(model_dir, tmp_path):
    out = tmp_path / "a.json"
    result = run(
        "attribute",
        *paris_flags(model_dir),
        "--json",
        str(out),
    )
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    for key in (
        "model",
        "mode",
        "strategy",
        "tokens",
        "token_ids",
        "relevance",
        "explained",
        "target",
        "contrast",
        "top_k",
    ):
        assert key in data
    assert data["tokens"][0] == "<s>" and data["tokens"][-1] == "is"
    assert len(data["relevance"]) == len(data["token_ids"]) == 6
    assert data["explained"] == pytest.approx(
        data["target"]["logit"] - data["contrast"]["logit"], abs=1e-5
    )
    assert {"text", "id", "logit"} <= set(data["target"])


def test_attribute_token_ids_and_strategies(model_dir, tmp_path):
    out = tmp_path / "b.json"
    result = run(
        "attribute",
        "--model",
        model_dir,
        "--prompt",
        "list three primary colors",
        "--chat",
        "--prefix",
        "red :",
        "--target",
        "id:20",
        "--strategy",
        "demean",
        "--json",
        str(out),
    )
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["target"]["id"] == 20 and data["strategy"] == "demean" and data["contrast"] is None


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "no-such-model-xyz"], "unknown model"),
        (["--prompt", ""], "--prompt is required"),
        (["--target", "zebra"], "not in the vocabulary"),
        (["--contrast", "id:999999"], "outside the vocabulary"),
        (["--strategy", "by_ref_token", "--contrast", None], "--contrast is required"),
    ],
)
def test_bad_input_is_one_line_and_non_zero(model_dir, tmp_path, args, message):
    base = {
        "--model": model_dir,
        "--prompt": "the capital of france is",
        "--target": "paris",
        "--contrast": "lyon",
    }
    for flag, value in zip(args[::2], args[1::2], strict=True):
        base[flag] = value
    argv = ["attribute", "--json", str(tmp_path / "x.json")]
    for flag, value in base.items():
        if value is not None:
            argv += [flag, value]
    result = run(*argv)
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_validate_reports_broken_files(tmp_path):
    (tmp_path / "bad.toml").write_text('id = "x"\nmodel = "m"\nprompt = "p"\n')
    result = run("validate", str(tmp_path))
    assert result.exit_code == 1
    assert "bad.toml: field 'target': is required" in result.output


def test_models_list():
    result = run("models", "list")
    assert result.exit_code == 0 and "smollm2-135m-instruct" in result.output


def test_four_bit_on_cpu_is_refused_with_a_reason(model_dir, tmp_path):
    result = run(
        "attribute",
        "--model",
        model_dir,
        "--prompt",
        "the capital",
        "--target",
        "paris",
        "--4bit",
        "--json",
        str(tmp_path / "q.json"),
    )
    assert result.exit_code == 1
    assert "4-bit" in result.output and "CUDA" in result.output


def test_graph_json_matches_attribute_and_sums_exactly(model_dir, tmp_path):
    import numpy as np

    flags = paris_flags(model_dir)
    assert run("attribute", *flags, "--json", str(tmp_path / "a.json")).exit_code == 0
    result = run("graph", *flags, "--no-prune", "--split", "--out", str(tmp_path / "g.json"))
    assert result.exit_code == 0, result.output
    attribution = json.loads((tmp_path / "a.json").read_text())
    graph = json.loads((tmp_path / "g.json").read_text())
    assert graph["tokens"] == attribution["tokens"]
    assert graph["layers"] == ["emb", "0.mid", "0", "1.mid", "1"]
    relevance = np.array(graph["node_relevance"])
    np.testing.assert_allclose(relevance[0], attribution["relevance"], rtol=1e-5, atol=1e-7)
    n = len(graph["tokens"])
    for layer, name in enumerate(graph["layers"][:-1]):
        columns = np.zeros(n)
        for edge in graph["edges"]:
            if edge["source_layer"] == name:
                assert edge["target_layer"] == graph["layers"][layer + 1]
                columns[edge["source"]] += edge["weight"]
        np.testing.assert_allclose(columns, relevance[layer], rtol=1e-3, atol=1e-6)
    assert graph["meta"]["method"] == "closed" and graph["meta"]["exact"] is True
    packed = run(
        "graph",
        *flags,
        "--no-prune",
        "--split",
        "--method",
        "packed",
        "--out",
        str(tmp_path / "p.json"),
    )
    assert packed.exit_code == 0, packed.output
    reference = json.loads((tmp_path / "p.json").read_text())
    assert reference["meta"]["method"] == "packed"

    def as_dict(g):
        return {
            (e["source_layer"], e["target_layer"], e["source"], e["target"]): e["weight"]
            for e in g["edges"]
        }

    closed_edges, packed_edges = as_dict(graph), as_dict(reference)
    assert closed_edges.keys() == packed_edges.keys()
    scale = max(abs(w) for w in packed_edges.values())
    assert max(abs(closed_edges[k] - packed_edges[k]) for k in packed_edges) < 1e-5 * scale
    assert len(graph["metrics"]) == 5
    npz = run("graph", *flags, "--out", str(tmp_path / "g.npz"))
    assert npz.exit_code == 0
    with np.load(tmp_path / "g.npz", allow_pickle=False) as data:
        assert list(data["layers"]) == ["emb", "0", "1"] and list(data["tokens"]) == graph["tokens"]


def test_graph_writes_head_edges_on_request(model_dir, tmp_path):
    import numpy as np

    flags = paris_flags(model_dir)
    graph_out = tmp_path / "g.json"
    result = run("graph", *flags, "--no-prune", "--heads", "1", "--out", str(graph_out))
    assert result.exit_code == 0, result.output
    assert "strongest head per block: 1.h" in result.output
    graph = json.loads(graph_out.read_text())
    n = len(graph["tokens"])
    block_edges = np.zeros((n, n))
    for edge in graph["edges"]:
        if edge["source_layer"] == "0":  # the input of block 1
            block_edges[edge["target"], edge["source"]] += edge["weight"]
    packed = run(
        "graph",
        *flags,
        "--no-prune",
        "--method",
        "packed",
        "--heads",
        "1",
        "--out",
        str(tmp_path / "p.json"),
    )
    assert packed.exit_code == 0, packed.output
    with (
        np.load(tmp_path / "g.heads.npz", allow_pickle=False) as closed,
        np.load(tmp_path / "p.heads.npz", allow_pickle=False) as reference,
    ):
        assert list(closed["blocks"]) == [1] and str(closed["method"]) == "closed"
        assert str(reference["method"]) == "packed"
        heads = closed["heads"]
        assert heads.shape[0] == 1 and heads.shape[1] > 1 and heads.shape[2:] == (n, n)
        scale = np.abs(block_edges).max()
        np.testing.assert_allclose(heads, reference["heads"], rtol=0, atol=1e-5 * scale)
        summed = heads[0].sum(0) + np.diag(closed["residual"][0])
        np.testing.assert_allclose(summed, block_edges, rtol=0, atol=1e-5 * scale)
    bad = run("graph", *flags, "--heads", "7", "--out", str(tmp_path / "b.json"))
    assert bad.exit_code != 0 and "--heads: expected block indices in 0..1" in bad.output
    assert run("graph", *flags, "--heads", "x", "--out", str(tmp_path / "c.json")).exit_code != 0


def test_help_does_not_import_the_heavy_libraries():
    """`reportgen --help` and every command's --help stay instant: torch, transformers and
    numpy are imported inside the commands, never by the command line's modules."""
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from reportgen.cli import main\n"
        "names = [''] + sorted(main.commands)\n"
        "for name in names:\n"
        "    args = ([name] if name else []) + ['--help']\n"
        "    result = CliRunner().invoke(main, args)\n"
        "    assert result.exit_code == 0, (name, result.output)\n"
        "print(len(names), sorted(m for m in ('torch', 'transformers', 'numpy') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split(maxsplit=1) == ["12", "[]\n"]  # + pages, publish


# --- issue 31 item 6: nothing hangs --------------------------------------------------------


@pytest.fixture(scope="module")
def long_context_model(tmp_path_factory):
    """The tiny Llama with a context of a million tokens: a long input is one long attention
    call per layer (40,000 tokens: several seconds each, one C call that ignores Python)."""
    folder = save_tiny_llama(tmp_path_factory.mktemp("tiny-long-context"))
    config = json.loads((Path(folder) / "config.json").read_text())
    config["max_position_embeddings"] = 1_000_000
    (Path(folder) / "config.json").write_text(json.dumps(config))
    return folder


def test_an_input_longer_than_the_context_is_one_line_on_every_command(model_dir, tmp_path):
    long_prompt = " ".join(["paris"] * 200)  # the tiny model's context is 128 tokens
    case = tmp_path / "long.toml"
    case.write_text(
        f'id = "long"\nmodel = "{model_dir}"\nprompt = "{long_prompt}"\ntarget = "paris"\n'
    )
    flags = ["--model", model_dir, "--prompt", long_prompt, "--target", "paris"]
    for argv, where in (
        (["attribute", *flags, "--json", str(tmp_path / "a.json")], ""),
        (["graph", *flags, "--out", str(tmp_path / "g.json")], ""),
        (["graph", str(case), "--out", str(tmp_path / "g.json")], f"{case}: field 'prompt': "),
        (["run", str(case), "--out", str(tmp_path / "site"), "--no-pdf"], f"{case}: field"),
        (["build", str(case), "--out", str(tmp_path / "site"), "--no-pdf"], f"{case}: field"),
    ):
        result = run(*argv)
        assert result.exit_code == 1, argv
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 or argv[0] == "build", result.output
        assert "the input is 200 tokens, more than the 128" in result.output
        assert "max_position_embeddings" in result.output and where in result.output
        assert "Traceback" not in result.output
    assert not (tmp_path / "a.json").exists() and not (tmp_path / "g.json").exists()


def test_attribute_and_graph_check_the_memory_estimate(model_dir, tmp_path, monkeypatch):
    from reportgen import progress

    monkeypatch.setattr(progress, "available_memory_gb", lambda: 0.01)
    monkeypatch.delenv("REPORTGEN_MEMORY_CHECK", raising=False)
    for argv in (
        ["attribute", *paris_flags(model_dir), "--json", str(tmp_path / "a.json")],
        ["graph", *paris_flags(model_dir), "--out", str(tmp_path / "g.json")],
    ):
        result = run(*argv)
        assert result.exit_code == 1 and "GB of memory" in result.output, result.output
        assert "REPORTGEN_MEMORY_CHECK=0" in result.output
    monkeypatch.setenv("REPORTGEN_MEMORY_CHECK", "0")
    assert (
        run("attribute", *paris_flags(model_dir), "--json", str(tmp_path / "a.json")).exit_code == 0
    )


def test_signal_handlers_are_restored_after_a_command(model_dir, tmp_path):
    import signal

    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    assert run("validate", str(tmp_path)).exit_code == 1
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    assert signal.set_wakeup_fd(-1) == -1  # no wakeup fd left behind


_MARK_ATTENTION = """
import sys
from pathlib import Path

import faulthandler
import signal

import torch

faulthandler.register(signal.SIGUSR1, all_threads=True)  # the test's view when it is too slow

mark = Path(sys.argv.pop(1))


def started(module, args):
    if type(module).__name__ == "LlamaAttention" and not mark.exists():
        mark.write_text("in attention")


torch.nn.modules.module.register_module_forward_pre_hook(started)
from reportgen.cli import main

main(prog_name="reportgen")
"""


@pytest.mark.parametrize(
    "signum, command",
    [
        # failed in three whole default runs (2026-12-04) that were started with `... &`,
        # which ignores SIGINT in the suite and its children (tests/conftest.py undoes it)
        ("SIGINT", "graph"),
        ("SIGTERM", "run"),
    ],
)
def test_a_signal_during_one_long_attention_call_ends_the_process_in_seconds(
    long_context_model, tmp_path, signum, command
):
    """Issue 31: a long prompt sat in one attention call and ignored SIGTERM (300 s) and
    SIGINT (766 s). 40,000 tokens on the tiny model: one attention call lasts many seconds
    (a C call: Python's own handler would only run once it returns)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    case = tmp_path / "long.toml"
    prompt = " ".join([","] * 40_000)
    case.write_text(
        f'id = "long"\nmodel = "{long_context_model}"\nprompt = "{prompt}"\ntarget = "paris"\n'
    )
    out = tmp_path / ("g.json" if command == "graph" else "site")
    argv = [command, str(case), "--out", str(out)] + (["--no-pdf"] if command == "run" else [])
    mark = tmp_path / "in-attention"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
    proc = subprocess.Popen(
        [sys.executable, "-c", _MARK_ATTENTION, str(mark), *argv],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        end = time.monotonic() + 180
        while not mark.exists() and proc.poll() is None and time.monotonic() < end:
            time.sleep(0.2)
        assert mark.exists(), proc.communicate()
        time.sleep(1)  # inside the first attention call
        sent = time.monotonic()
        proc.send_signal(getattr(signal, signum))
        try:
            _, err = proc.communicate(timeout=8)
        except subprocess.TimeoutExpired:  # too slow: its threads' stacks say where it sits
            proc.send_signal(signal.SIGUSR1)
            try:
                _, err = proc.communicate(timeout=120)
            except subprocess.TimeoutExpired:  # never ended: show where it went on computing
                proc.kill()
                _, err = proc.communicate()
        took = time.monotonic() - sent
    finally:
        proc.kill()
    assert took < 6, f"{signum} took {took:.1f} s; its stderr:\n{err[-4000:]}"
    assert proc.returncode == 1
    assert err.strip().splitlines()[-1] == "Error: interrupted"
    assert "Traceback" not in err
    assert not out.exists()


def test_a_ray_address_that_does_not_answer_fails_in_seconds(model_dir, tmp_path):
    """Issue 31: `--executor ray --ray-address 127.0.0.1:1` hung for over 5 minutes."""
    import time

    pytest.importorskip("ray")
    case = tmp_path / "case.toml"
    case.write_text(
        f'id = "c"\nmodel = "{model_dir}"\nprompt = "the capital of france is"\ntarget = "paris"\n'
    )
    started = time.monotonic()
    result = run(
        "build",
        str(case),
        "--out",
        str(tmp_path / "site"),
        "--no-pdf",
        "--executor",
        "ray",
        "--ray-address",
        "127.0.0.1:1",
    )
    assert time.monotonic() - started < 30
    assert result.exit_code == 1 and "Traceback" not in result.output
    (line,) = result.output.strip().splitlines()
    assert "--ray-address 127.0.0.1:1: no Ray cluster answers there" in line
    assert "ray start --head" in line


def test_a_lost_ray_process_is_a_sentence_a_user_can_act_on(monkeypatch):
    """Killing one of Ray's own processes ended a build with "internal error (ActorDiedError)"."""
    ray_exceptions = pytest.importorskip("ray.exceptions")
    from reportgen.errors import ReportgenError
    from reportgen.runner import ray_executor

    def lost(*args, **kwargs):
        raise ray_exceptions.ActorDiedError()

    monkeypatch.setattr(ray_executor, "_run_ray", lost)
    with pytest.raises(ReportgenError) as info:
        ray_executor.run_ray([], 1, lambda outcome: None)
    message = str(info.value)
    assert "the Ray cluster lost a process the run needs (ActorDiedError" in message
    assert "ray status" in message and "finished cases are cached" in message
