"""The pinned subgraph's vector figure: a standalone TikZ file at a column's and the text's
width that pdflatex compiles without shell escape, and a build from a case file that pins nodes."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import replace

import pytest
from render_fixtures import make_result

from reportgen.render.pinned_figure import WIDTHS, pinned_tikz, pinned_units, write_pinned_figures

PINNED = [["emb", 1], ["0", 2], ["0.mid", 3], ["1", 8], ["emb", 0]]
HOSTILE_LABEL = r"\write18{touch pwned} $x$ & {#} % ~"


def pinned_result(label: str = "subject"):
    result = make_result()
    graph = result.graph.with_meta(
        pinned=PINNED, supernodes=[{"label": label, "nodes": [["emb", 1], ["emb", 0]]}]
    )
    return replace(result, graph=graph)


def test_units_group_supernodes_and_sum_their_edges():
    units, edges = pinned_units(pinned_result())
    labels = [(u.label, u.members) for u in units]
    assert labels[0] == ("subject", (("emb", 1), ("emb", 0)))
    assert [u.members for u in units[1:]] == [(("0", 2),), (("0.mid", 3),), (("1", 8),)]
    graph = pinned_result().graph
    relevance = graph.node_relevance
    assert units[0].relevance == pytest.approx(relevance[0, 1] + relevance[0, 0])
    # emb:1 -> 0:2 and emb:0 -> 1:8 leave the supernode; 0:2 -> 0.mid:3 -> 1:8 join nodes
    assert set(edges) == {(0, 1), (0, 3), (1, 2), (2, 3)}
    assert pinned_units(make_result()) is None
    assert write_pinned_figures(make_result(), None, compile_pdf=False) == []


def test_the_figure_escapes_every_label():
    document = pinned_tikz(pinned_result(HOSTILE_LABEL), 3.25)
    assert r"\write18" not in document and "touch pwned" in document
    assert r"\resizebox{3.25in}{!}" in document
    assert "subject" in pinned_tikz(pinned_result(), 6.75)


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="needs pdflatex")
def test_the_figure_compiles_at_a_column_and_the_text_width(tmp_path):
    files = write_pinned_figures(pinned_result(HOSTILE_LABEL), tmp_path, compile_pdf=True)
    names = sorted(p.name for p in files)
    assert names == [
        "synthetic-case-pinned-column.pdf",
        "synthetic-case-pinned-column.tex",
        "synthetic-case-pinned-text.pdf",
        "synthetic-case-pinned-text.tex",
    ]
    assert not (tmp_path / "pwned").exists()
    if shutil.which("pdfinfo") is None:
        return
    for name, inches in WIDTHS.items():
        info = subprocess.run(
            ["pdfinfo", str(tmp_path / f"synthetic-case-pinned-{name}.pdf")],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        size = next(line for line in info.splitlines() if line.startswith("Page size"))
        width = float(size.split(":")[1].split("x")[0])
        assert width == pytest.approx(inches * 72, abs=0.05), name


def test_a_case_file_that_pins_nodes_builds_the_same_figure(tmp_path, one_thread):
    """compute_case carries the case's pinned nodes in the graph's meta; the figure set then
    holds the figure drawn from them."""
    from tiny_models import save_tiny_llama

    from reportgen.cases import load_case
    from reportgen.compute import compute_case
    from reportgen.models import load_model
    from reportgen.render.latex import render_latex

    model = save_tiny_llama(tmp_path / "model")
    case_file = tmp_path / "pinned.toml"
    case_file.write_text(
        f"""
id = "pinned-case"
model = "{model}"
prompt = "the capital of france is"
target = "paris"
contrast = "lyon"
bos = true

[graph]
node_threshold = 0.0
pinned = [["emb", 5], ["0", 5], ["1", 5]]
supernodes = [{{ label = "the question", nodes = [["emb", 2], ["emb", 3]] }}]
""",
        encoding="utf-8",
    )
    case = load_case(case_file)
    result = compute_case(case, load_model(case.model), command="test")
    assert result.graph.meta["pinned"] == [["emb", 5], ["0", 5], ["1", 5], ["emb", 2], ["emb", 3]]
    assert result.interventions.pinned is not None
    assert [label for label, _ in result.interventions.supernodes] == ["the question"]
    render_latex(result, tmp_path / "figures", compile_pdf=False)
    for name, inches in WIDTHS.items():
        tex = (tmp_path / "figures" / f"pinned-case-pinned-{name}.tex").read_text(encoding="utf-8")
        assert tex == pinned_tikz(result, inches) and "the question" in tex
