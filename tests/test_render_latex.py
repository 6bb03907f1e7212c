"""The LaTeX figure set: the escape function on hostile text, and real pdflatex compiles."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from render_fixtures import hostile_result, make_result

from reportgen.render import latex
from reportgen.render import tex as tex_mod
from reportgen.render.latex import render_latex
from reportgen.render.tex import LatexError, escape_latex, placeholder

needs_pdflatex = pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex missing")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain text", "plain text"),
        ("\\", r"\textbackslash{}"),
        ("{x}", r"\{x\}"),
        ("$ & # _ %", r"\$ \& \# \_ \%"),
        ("^~", r"\textasciicircum{}\textasciitilde{}"),
        ("\\input{/etc/passwd}", r"\textbackslash{}input\{/etc/passwd\}"),
        ("\\write18{rm -rf x}", r"\textbackslash{}write18\{rm {-}rf x\}"),
        ("<<--``", r"{<}{<}{-}{-}\textasciigrave{}\textasciigrave{}"),
        ("x='s'", r"x=\textquotesingle{}s\textquotesingle{}"),
        ("café ß", "café ß"),
        ("😀", r"\fbox{\tiny U+1F600}"),
        ("中文", r"\fbox{\tiny U+4E2D}\fbox{\tiny U+6587}"),
        ("a\nb", "a b"),
    ],
)
def test_escape_latex(text: str, expected: str) -> None:
    assert escape_latex(text) == expected


def test_escape_latex_visible_whitespace() -> None:
    assert escape_latex("\n", visible_whitespace=True) == r"$\hookleftarrow$"
    assert escape_latex(" ", visible_whitespace=True) == r"\textvisiblespace{}"
    assert escape_latex(" the", visible_whitespace=True) == r"\ the"
    assert escape_latex("", visible_whitespace=True) == r"$\emptyset$"


def test_escaped_text_has_no_live_commands() -> None:
    hostile = "\\input{/etc/passwd} \\write18{rm -rf x} \\def\\x{} \\catcode`\\@=11 %"
    out = escape_latex(hostile)
    # every backslash left is one we wrote: \textbackslash, \textasciicircum, \% ...
    allowed = (
        "\\textbackslash{}",
        "\\{",
        "\\}",
        "\\%",
        "\\textasciicircum{}",
        "\\textasciigrave{}",
    )
    stripped = out
    for token in allowed:
        stripped = stripped.replace(token, "")
    assert "\\" not in stripped
    assert "{" not in stripped.replace("{-}", "").replace("{}", "")


def test_placeholder_names_the_code_point() -> None:
    assert placeholder("\U0001f600") == r"\fbox{\tiny U+1F600}"


def test_sources_without_compiling(tmp_path: Path) -> None:
    result = make_result()
    assert render_latex(result, tmp_path, compile_pdf=False) is None
    for name in ("synthetic-case.tex", "synthetic-case-heatmap.tex", "synthetic-case-graph.tex"):
        assert (tmp_path / name).is_file()
    assert (tmp_path / "synthetic-case-relevance.pdf").read_bytes().startswith(b"%PDF")
    heatmap = (tmp_path / "synthetic-case-heatmap.tex").read_text()
    assert r"\tok{178,24,43}" in heatmap  # the strongest non-special token: full red, as on the web
    assert r"\tok{224,224,224}" in heatmap  # the special token: grey
    main = (tmp_path / "synthetic-case.tex").read_text()
    assert r"\tok{178,24,43}" in main and r"\begin{tikzpicture}" in main  # set inline
    assert "synthetic-case-faithfulness.pdf" in main


def test_missing_pdflatex_warns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(latex.shutil, "which", lambda name: None)
    with pytest.warns(UserWarning, match="pdflatex not found"):
        assert render_latex(make_result(full=False), tmp_path) is None
    assert (tmp_path / "synthetic-case.tex").is_file()


@needs_pdflatex
def test_hostile_case_compiles_without_side_effects(tmp_path: Path) -> None:
    out = tmp_path / "figures"
    pdf = render_latex(hostile_result(), out)
    assert pdf == out / "hostile-case.pdf"
    assert pdf.read_bytes().startswith(b"%PDF")
    # heatmap and graph are set inside the figure set (one pdflatex run); their standalone
    # sources stay beside it
    assert (out / "hostile-case-heatmap.tex").is_file()
    assert (out / "hostile-case-graph.tex").is_file()
    produced = {p.name for p in tmp_path.rglob("*")}
    assert not any(name in {"x", "passwd"} for name in produced), produced
    assert {p.suffix for p in out.iterdir()} <= {".tex", ".pdf"}


@needs_pdflatex
def test_failed_compile_names_the_case(tmp_path: Path) -> None:
    tex = tmp_path / "broken.tex"
    tex.write_text("\\documentclass{article}\\begin{document}\\undefinedmacro\\end{document}\n")
    with pytest.raises(LatexError, match=r"(?s)case 'broken-case'.*Undefined control sequence"):
        latex.compile_tex(tex, "broken-case")


def test_pdflatex_runs_without_shell_escape(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls = []

    def fake_run(args, **kwargs):  # noqa: ANN001, ANN003
        calls.append(args)
        Path(kwargs["cwd"], args[-1]).with_suffix(".pdf").write_bytes(b"%PDF")
        return subprocess.CompletedProcess(args, 0, "", "")

    monkeypatch.setattr(tex_mod.subprocess, "run", fake_run)
    tex = tmp_path / "a.tex"
    tex.write_text("")
    latex.compile_tex(tex, "a")
    assert calls[0][1:4] == ["-no-shell-escape", "-interaction=nonstopmode", "-halt-on-error"]


def test_graph_figure_draws_only_the_nodes_its_edges_touch():
    from types import SimpleNamespace

    from reportgen.graph.types import AttributionGraph
    from reportgen.render.latex import graph_body

    graph = {
        "layers": ["emb", "0"],
        "tokens": ["a", "b", "c"],
        "node_relevance": [[0.5, 0.2, 0.1], [0.0, 0.3, 0.9]],
        "edges": [
            {"source_layer": "emb", "target_layer": "0", "source": 0, "target": 2, "weight": 0.4}
        ],
    }
    body = graph_body(SimpleNamespace(graph=AttributionGraph.from_json(graph)))
    assert body.count("circle") == 2  # (emb, 0) and (0, 2), not the four untouched nodes
    assert body.count(r"\draw[") == 1
    alone = graph_body(SimpleNamespace(graph=AttributionGraph.from_json({**graph, "edges": []})))
    assert alone.count("circle") == 5  # no edges: every non-zero node


def test_figure_set_is_one_pdflatex_run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls = []

    def fake_run(args, **kwargs):  # noqa: ANN001, ANN003
        calls.append(args[-1])
        Path(kwargs["cwd"], args[-1]).with_suffix(".pdf").write_bytes(b"%PDF")
        return subprocess.CompletedProcess(args, 0, "", "")

    monkeypatch.setattr(tex_mod.subprocess, "run", fake_run)
    monkeypatch.setattr(latex.shutil, "which", lambda name: "/usr/bin/pdflatex")
    render_latex(make_result(), tmp_path)
    assert calls == ["synthetic-case.tex"]


def test_code_tokens_keep_their_lines() -> None:
    from render_fixtures import long_result

    from reportgen.render.tokens import token_cells

    body = latex.heatmap_body(token_cells(long_result(40).attribution))
    # "\n    " (newline + indentation): the arrow ends the line, the indentation starts the next
    assert "$\\hookleftarrow$}%\n\\par\n\\tok{" in body
    assert "{\\ \\ \\ \\ }%" in body


def test_long_graph_figure_draws_only_the_subgraph_columns() -> None:
    from render_fixtures import long_result

    result = long_result(10_000)
    body = latex.graph_body(result)
    columns = latex.graph_positions(result.graph)
    assert len(columns) == 13  # the 13 positions its edges touch, not 10,000
    assert body.count("rotate=60") == 13
    assert max(float(x) for x in __import__("re").findall(r"\((\d+\.\d+),-0\.35\)", body)) < 12


@pytest.mark.slow
@needs_pdflatex
@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="pdftotext missing")
def test_ten_thousand_token_figure_set_compiles_and_shows_the_tokens(tmp_path: Path) -> None:
    from render_fixtures import long_result

    pdf = render_latex(long_result(10_000), tmp_path)
    text = subprocess.run(
        ["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    assert text.count("fahrenheit_to_celsius(value):") > 300  # the heatmap runs over pages
    pages = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True).stdout
    assert int(__import__("re").search(r"Pages:\s+(\d+)", pages).group(1)) > 20
