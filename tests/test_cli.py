"""The CLI end to end on a tiny local model: JSON output and one-line errors."""

import json

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
