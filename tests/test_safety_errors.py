"""Issue 14: errors are one line and say what to do; hidden characters are shown visibly."""

import csv
import io
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner
from render_fixtures import make_result
from tiny_models import save_tiny_llama

from reportgen.cli import main
from reportgen.render.data_files import relevance_csv
from reportgen.render.html import render_dossier
from reportgen.render.tokens import visible_controls

HIDDEN = {
    "\x00": "U+0000",
    "\x1b": "U+001B",
    "\x85": "U+0085",
    "\u202e": "U+202E",
    "\u2066": "U+2066",
    "\u200b": "U+200B",
    "\u200d": "U+200D",
    "\ufeff": "U+FEFF",
}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_llama(tmp_path_factory.mktemp("tiny-safety-errors"))


def run(*args):
    return CliRunner().invoke(main, list(args))


def one_line(result, *words):
    lines = result.output.strip().splitlines()
    assert result.exit_code == 1 and len(lines) == 1, result.output
    assert "Traceback" not in result.output and "internal error" not in result.output
    assert all(w in lines[0] for w in words), lines[0]


def attribute(model, tmp_path, *extra):
    return run(
        "attribute",
        "--model",
        str(model),
        "--prompt",
        "the capital of france is",
        "--target",
        "paris",
        "--json",
        str(tmp_path / "a.json"),
        *extra,
    )


def test_device_cuda_without_cuda_is_one_line(model_dir, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    one_line(attribute(model_dir, tmp_path, "--device", "cuda"), "CUDA is not available", "cpu")
    one_line(attribute(model_dir, tmp_path, "--device", "banana"), "unknown device")


@pytest.mark.parametrize(
    "config",
    ['{"model_type": "llama", "hidden_size": ', '{"model_type": "no-such-arch"}', "[1, 2]"],
)
def test_a_bad_config_json_is_one_line(model_dir, tmp_path, config):
    bad = tmp_path / "bad"
    shutil.copytree(model_dir, bad)
    (bad / "config.json").write_text(config)
    one_line(attribute(bad, tmp_path), "cannot load the model", str(bad))


@pytest.mark.parametrize(
    "header",
    [
        b"nonsense",
        b"GGUF\x03\x00\x00\x00" + b"\xff" * 16,  # absurd tensor and key counts
        b"GGUF\x03\x00\x00\x00" + (1).to_bytes(8, "little") + (1).to_bytes(8, "little") + b"\x00",
    ],
)
def test_a_crafted_gguf_header_is_one_line(tmp_path, header):
    path = tmp_path / "model.gguf"
    path.write_bytes(header + b"\x00" * 64)
    one_line(attribute(path, tmp_path), "GGUF", "download it again")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_errors_are_one_line(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<h1>site</h1>")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        one_line(run("serve", "--dir", str(site), "--port", str(port)), "already in use", "--port")
    one_line(run("serve", "--dir", str(site), "--port", "70000"), "between 1 and 65535")
    one_line(run("serve", "--dir", str(tmp_path / "nothing")), "not a built site")
    (tmp_path / "file").write_text("x")
    one_line(run("serve", "--dir", str(tmp_path / "file")), "not a built site")


def test_serve_lists_no_directories(tmp_path):
    site = tmp_path / "site"
    (site / "cases" / "a").mkdir(parents=True)
    (site / "index.html").write_text("<h1>site</h1>")
    (site / "cases" / "a" / "index.html").write_text("dossier")
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "reportgen.cli", "serve", "--dir", str(site), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).parent.parent)},
    )
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                body = urllib.request.urlopen(url + "/").read()
                break
            except OSError:
                time.sleep(0.1)
        assert body == b"<h1>site</h1>"
        assert urllib.request.urlopen(url + "/cases/a/").read() == b"dossier"
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(url + "/cases/")
        assert info.value.code == 404
    finally:
        server.kill()
        server.wait()


def test_hidden_characters_are_shown_as_markers_in_every_html_view(tmp_path):
    texts = ["<s>", *[f"a{c}b" for c in HIDDEN]]
    hidden = "".join(HIDDEN)
    result = make_result("hidden", texts=texts, relevance=[0.1] * len(texts), prompt=f"p{hidden}q")
    result = type(result)(
        **{**result.__dict__, "title": f"T{hidden}", "prefix": f"x{hidden}", "description": hidden}
    )
    page = render_dossier(result, tmp_path).read_text(encoding="utf-8")
    for char, code in HIDDEN.items():
        assert char not in page, code
        assert page.count(code) >= 4, code  # tokens, prompt, prefix, title (at least)
    rows = list(csv.reader(io.StringIO(relevance_csv(result))))
    cells = [row[1] for row in rows[2:]]
    assert all(not any(c in cell for c in HIDDEN) for cell in cells)
    assert [code in cell for cell, code in zip(cells, HIDDEN.values(), strict=True)] == [True] * 8
    assert visible_controls("line\nnext\ttab") == "line\nnext\ttab"
    assert visible_controls("plain ASCII, émoji 😀, 中文") == "plain ASCII, émoji 😀, 中文"


def test_hidden_characters_in_a_built_site(model_dir, tmp_path):
    cases = tmp_path / "cases"
    cases.mkdir()
    (cases / "a.toml").write_text(
        f'id = "case-a"\ntitle = "Evil \\u202e title \\u0000"\nmodel = "{model_dir}"\n'
        'tags = { benchmark = "b\\u202eench\\u200b" }\n'
        'prompt = "the capital \\u202eof\\u200b france\\u001b[31m is"\n'
        'target = "paris"\ncontrast = "lyon"\n'
    )
    out = tmp_path / "site"
    result = run("build", str(cases), "--out", str(out), "--no-pdf")
    assert result.exit_code == 0, result.output
    for page in [out / "index.html", out / "cases" / "case-a" / "index.html"]:  # charts too
        html = page.read_text(encoding="utf-8")
        assert "\u202e" not in html and "\x00" not in html and "\x1b" not in html
        assert "U+202E" in html


def test_a_megabytes_long_jsonl_line_is_refused_with_one_line(tmp_path):
    """Issue 31: a 5 MB JSONL line sat in tokenisation and ignored signals."""
    from reportgen.collect.benchmarks import MAX_JSONL_LINE, jsonl_rows
    from reportgen.errors import ReportgenError

    data = tmp_path / "items.jsonl"
    row = '{"id": "big", "prompt": "%s", "answer": "1"}' % ("x " * (5 << 19))
    data.write_text('{"id": "ok", "prompt": "2+2", "answer": "4"}\n' + row + "\n")
    assert len(row) > MAX_JSONL_LINE
    with pytest.raises(ReportgenError, match=r"items.jsonl:2: the line is longer than 1 MB"):
        jsonl_rows(data)
    result = run(
        "collect", "jsonl", "--data", str(data), "--model", "m", "--out", str(tmp_path / "c")
    )
    one_line(result, "items.jsonl:2", "longer than 1 MB")
    os_fifo = tmp_path / "fifo.jsonl"
    import os

    os.mkfifo(os_fifo)
    with pytest.raises(ReportgenError, match="named pipe"):
        jsonl_rows(os_fifo)


@pytest.mark.parametrize(
    "row, words",
    [
        ('{"id": "a", "prompt": "p", "instruction_id_list": 5}', "'instruction_id_list' must be"),
        (
            '{"id": "a", "prompt": "p", "instruction_id_list": ["no:such_id"]}',
            "unknown IFEval instruction id 'no:such_id'",
        ),
        (
            '{"id": "a", "prompt": "p", "instruction_id_list": ["punctuation:no_comma"], '
            '"kwargs": 3}',
            "'kwargs' must be a list of 1 tables",
        ),
        ('{"id": {"x": 1}, "prompt": "p", "answer": "1"}', "'id' must be a string or number"),
    ],
)
def test_bad_jsonl_items_are_one_line_before_any_generation(tmp_path, row, words):
    """Issue 31: `instruction_id_list: 5` gave "internal error (TypeError)"; an unknown IFEval
    id was caught only after generating. The model does not exist: the items come first."""
    from reportgen.collect.instructions import _registry
    from reportgen.errors import ReportgenError

    try:
        _registry()
    except ReportgenError:
        pytest.skip("if-verifiable is not installed")
    data = tmp_path / "items.jsonl"
    data.write_text(row + "\n")
    result = run(
        "collect", "jsonl", "--data", str(data), "--model", str(tmp_path / "no-model"),
        "--out", str(tmp_path / "out"),
    )  # fmt: skip
    one_line(result, f"{data}:1", words)


@pytest.mark.parametrize("flag, value", [("--items", ","), ("--items", " , "), ("--models", ",")])
def test_a_list_flag_that_names_nothing_is_refused(tmp_path, flag, value):
    """`--items ","` ran every item."""
    result = run("collect", "arithmetic", flag, value, "--out", str(tmp_path / "out"))
    one_line(result, flag, "names no")
    assert not (tmp_path / "out").exists()


def test_file_system_errors_name_the_path_and_what_to_do():
    import errno

    from reportgen.cli.common import os_error_line

    busy = OSError(errno.EBUSY, "Device or resource busy", "site", None, "site.old")
    assert os_error_line(busy) == (
        "site -> site.old: Device or resource busy (in use or a mount point: reportgen "
        "replaces an output folder as a whole, so give a folder inside it)"
    )
    immutable = OSError(errno.EPERM, "Operation not permitted", "site/index.html")
    assert os_error_line(immutable).startswith("site/index.html: Operation not permitted (")
    assert "immutable" in os_error_line(immutable)
    full = OSError(errno.ENOSPC, "No space left on device")
    assert os_error_line(full) == (
        "a file being written: No space left on device (the disk is full; free space and run "
        "again (finished cases are cached))"
    )


def test_a_pdflatex_failure_is_its_error_lines_not_the_log(tmp_path):
    from reportgen.render.tex import log_excerpt as _log_excerpt

    log = tmp_path / "case.log"
    chatter = "\n".join(
        f"(/usr/share/texmf/tex/latex/pkg{i}.sty package chatter)" for i in range(400)
    )
    log.write_text(
        chatter + "\n! Undefined control sequence.\nl.42 \\foo\n          {bar}\n" + chatter
    )
    assert len(log.read_text()) > 20_000
    excerpt = _log_excerpt(log, "")
    assert excerpt == "! Undefined control sequence. | l.42 \\foo"
    log.write_text(chatter + "\n! LaTeX Error: File `x.sty' not found.\n")
    assert _log_excerpt(log, "").startswith("! LaTeX Error: File `x.sty' not found.")
    assert "\n" not in _log_excerpt(log, "") and len(_log_excerpt(log, "")) <= 300
