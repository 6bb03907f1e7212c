"""Paper figures (issue 28): measured from the PDFs the build makes, as a reader's paper gets
them. Each compiling fixture is one pdflatex run for a whole figure set; they are module-scoped
so the default run compiles three figure sets, one study set and one article."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
from render_fixtures import hostile_result, make_result, metrics_row

from reportgen.errors import CaseError
from reportgen.faithfulness import failure_pattern
from reportgen.project import FIGURE_FONTS, FigureSettings, load_project
from reportgen.render import paper, study, study_paper
from reportgen.render.data_files import write_data_files
from reportgen.results import FailurePattern

TOOLS = ("pdflatex", "pdfinfo", "pdffonts", "pdftotext", "pdfseparate")
needs_tex = pytest.mark.skipif(
    any(shutil.which(t) is None for t in TOOLS), reason="pdflatex or poppler-utils missing"
)

#: every LaTeX special character, TeX ligature starters, unicode a T1 font has and has not,
#: invisible characters, a chat-template token, and a token longer than any line
HOSTILE_PAPER_TOKENS = [
    "<|im_start|>",
    "\\ { } $ & # ^ _ % ~",
    " \\input{/etc/passwd}",
    "\\write18{touch pwned}",
    "<< >> -- --- `` '' ,, !` ?`",
    " [opt] | \" '",
    " café ß Ñ",
    " 😀 中文 \u202e \u200b",
    "\n\t",
    "   ",
    "",
    "x" * 180,
    "<|im_end|>",
]


def pdf_width(pdf: Path) -> float:
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True)
    return float(re.search(r"Page size:\s+([\d.]+)", info.stdout).group(1))


def pdf_fonts(pdf: Path) -> set[str]:
    out = subprocess.run(["pdffonts", str(pdf)], capture_output=True, text=True, check=True)
    return {line.split()[0].split("+")[-1] for line in out.stdout.splitlines()[2:] if line}


def word_heights(pdf: Path) -> list[tuple[float, str]]:
    """(yMax - yMin, word) of every word pdftotext finds, in bp at the printed size."""
    out = subprocess.run(
        ["pdftotext", "-bbox", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    words = re.finditer(r'<word xMin="[\d.]+" yMin="([\d.]+)" xMax="[\d.]+" yMax="([\d.]+)">', out)
    return [(float(m.group(2)) - float(m.group(1)), m.group(0)) for m in words]


def pdf_text(pdf: Path) -> str:
    return subprocess.run(
        ["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout


def hostile_paper_result():
    n = len(HOSTILE_PAPER_TOKENS)
    relevance = [0.0] + [(-1) ** i * 0.1 * i for i in range(1, n - 1)] + [0.0]
    special = [True] + [False] * (n - 2) + [True]
    base = hostile_result()
    result = make_result(
        "hostile-paper", texts=HOSTILE_PAPER_TOKENS, relevance=relevance, special=special
    )
    graph = base.graph.to_json()
    graph["tokens"] = HOSTILE_PAPER_TOKENS
    graph["node_relevance"] = [row + [0.0] for row in graph["node_relevance"]]
    from reportgen.graph.types import AttributionGraph

    return dataclasses.replace(
        result,
        model="<b>model</b> \\x_1",
        graph=AttributionGraph.from_json(graph),
        metrics=tuple(
            metrics_row(layer, nodes=3 + i, gini_relevance=0.5 + 0.1 * i, local_ratio=1.0)
            for i, layer in enumerate(graph["layers"])
        ),
    )


@pytest.fixture(scope="module")
def hostile_set(tmp_path_factory) -> Path:
    if any(shutil.which(t) is None for t in TOOLS):
        pytest.skip("pdflatex or poppler-utils missing")
    out = tmp_path_factory.mktemp("paper") / "hostile"
    paper.render_paper_figures(hostile_paper_result(), out)
    return out


@pytest.fixture(scope="module")
def venue_set(tmp_path_factory) -> Path:
    """Another case at a venue's settings: 8 cm columns, sans serif, 10 pt, another colour map."""
    if any(shutil.which(t) is None for t in TOOLS):
        pytest.skip("pdflatex or poppler-utils missing")
    out = tmp_path_factory.mktemp("paper") / "venue"
    settings = FigureSettings(
        column_width=226.772, font="lmodern-sans", font_size=10, colormap="PuOr"
    )
    paper.render_paper_figures(make_result("case.b-2"), out, settings)
    return out


KINDS = ("heatmap", "heatmap-grey", "relevance", "graph", "faithfulness", "metrics")


@needs_tex
def test_every_figure_at_both_widths_in_latin_modern_with_words_of_7pt(hostile_set: Path):
    pdfs = sorted(hostile_set.glob("*.pdf"))
    assert {p.name for p in pdfs} == {
        f"hostile-paper-{kind}-{key}.pdf" for kind in KINDS for key in ("col", "text")
    }
    for pdf in pdfs:
        width = 234.0 if pdf.stem.endswith("-col") else 486.0
        assert abs(pdf_width(pdf) - width) <= 0.02 * width, pdf.name
        fonts = pdf_fonts(pdf)
        assert fonts and all(f.startswith("LM") for f in fonts), (pdf.name, fonts)
        heights = word_heights(pdf)
        assert heights, pdf.name
        assert min(heights)[0] >= 7.0, (pdf.name, min(heights))


@needs_tex
def test_hostile_tokens_print_literally_and_nothing_runs(hostile_set: Path):
    text = pdf_text(hostile_set / "hostile-paper-heatmap-text.pdf")
    flat = re.sub(r"\s+", "", text)
    for literal in (
        "<|im_start|>",
        "\\{}$&#^_%~",
        "\\input{/etc/passwd}",
        "\\write18{touchpwned}",
        "<<>>-----``'',,!`?`",
        "[opt]|\"'",
        "caféßÑ",
        "U+1F600",
        "U+4E2D",
        "U+202E",
        "U+200B",
        "x" * 60,
        "<|im_end|>",
    ):
        assert literal in flat, literal
    assert flat.count("x") >= 180  # the long token is cut into pieces, none lost
    assert not (hostile_set / "pwned").exists() and not any(hostile_set.rglob("pwned"))
    # upright typewriter, never the italic monospace of the old figure set
    fonts = pdf_fonts(hostile_set / "hostile-paper-heatmap-text.pdf")
    assert "LMMono9-Regular" in fonts
    assert not any("Mono" in f and ("Italic" in f or "Slant" in f) for f in fonts)
    relevance = pdf_text(hostile_set / "hostile-paper-relevance-col.pdf")
    assert "relevance" in relevance and "supports target" in relevance


@needs_tex
def test_metric_and_ordering_names_are_human(hostile_set: Path):
    faith = re.sub(r"\s+", " ", pdf_text(hostile_set / "hostile-paper-faithfulness-col.pdf"))
    assert "Gradient × input" in faith and "AttnLRP" in faith and "Random order" in faith
    assert "grad_x_input" not in faith
    metrics = pdf_text(hostile_set / "hostile-paper-metrics-col.pdf")
    assert "active nodes" in metrics and "concentration" in metrics


@needs_tex
def test_venue_settings_set_width_font_and_colours(venue_set: Path):
    col = venue_set / "case.b-2-relevance-col.pdf"
    assert abs(pdf_width(col) - 226.772) <= 0.02 * 226.772
    assert abs(pdf_width(venue_set / "case.b-2-relevance-text.pdf") - 486) <= 0.02 * 486
    fonts = pdf_fonts(venue_set / "case.b-2-heatmap-col.pdf")
    assert any(f.startswith(FIGURE_FONTS["lmodern-sans"][1]) for f in fonts), fonts
    assert not any(f.startswith("Nimbus") or f.startswith("Liberation") for f in fonts), fonts
    tex = (venue_set / "figures.tex").read_text()
    assert "orange pushes" in tex  # the caption names the PuOr colours
    assert "{case.b-2-heatmap-col}.pdf" in tex  # graphicx reads a name with dots


@needs_tex
def test_two_cases_figures_tex_compile_in_one_article_on_the_first_run(
    hostile_set: Path, venue_set: Path, tmp_path: Path
):
    for folder in (hostile_set, venue_set):
        tex = (folder / "figures.tex").read_text()
        assert tex.splitlines()[0] == r"% preamble: \usepackage{graphicx}"
        shutil.copytree(folder, tmp_path / folder.name)
    labels = re.findall(r"\\label\{([^}]+)\}", (hostile_set / "figures.tex").read_text())
    assert labels == [f"fig:hostile-paper:{k}" for k in KINDS]
    article = tmp_path / "paper.tex"
    article.write_text(
        "\\documentclass[twocolumn]{article}\n\\usepackage{graphicx}\n"
        "\\graphicspath{{hostile/}{venue/}}\n\\begin{document}\nText.\n"
        "\\input{hostile/figures.tex}\n\\input{venue/figures.tex}\n\\end{document}\n"
    )
    run = subprocess.run(
        ["pdflatex", "-no-shell-escape", "-interaction=nonstopmode", "-halt-on-error", "paper.tex"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    log = (tmp_path / "paper.log").read_text(errors="replace")
    assert run.returncode == 0, log[-2000:]
    assert "multiply defined" not in log and "File `" not in log
    pages = int(
        re.search(
            r"Pages:\s+(\d+)",
            subprocess.check_output(["pdfinfo", str(tmp_path / "paper.pdf")], text=True),
        ).group(1)
    )
    assert pages >= 2
    text = pdf_text(tmp_path / "paper.pdf")
    assert text.count("Figure") >= 2 * len(KINDS) - 1  # every caption of both cases


@needs_tex
def test_figures_zip_and_the_dossier_downloads_list_them(hostile_set: Path, tmp_path: Path):
    with zipfile.ZipFile(hostile_set / "figures.zip") as zf:
        names = {Path(n).name for n in zf.namelist()}
    assert names == {"figures.tex"} | {p.name for p in hostile_set.glob("*.pdf")}
    page = tmp_path / "page"
    shutil.copytree(hostile_set, page / "figures")
    downloads = write_data_files(hostile_paper_result(), page)
    hrefs = [d["href"] for d in downloads]
    assert "figures/figures.zip" in hrefs and "figures/figures.tex" in hrefs
    for pdf in hostile_set.glob("*.pdf"):
        assert f"figures/{pdf.name}" in hrefs
    notes = {d["label"]: d["note"] for d in downloads}
    assert notes["hostile-paper-heatmap-grey-col.pdf"] == (
        "token heatmap, greyscale-safe, column width"
    )


def test_the_figure_sources_escape_everything_and_keep_to_the_width():
    figures = paper.case_figures(hostile_paper_result(), FigureSettings())
    source, names = paper.build_pages(figures, FigureSettings(), "hostile-paper")
    assert len(names) == 2 * len(KINDS)
    assert "\\input{/etc" not in source and "\\write18{" not in source
    assert "\\textit" not in source  # special tokens upright
    assert source.count("\\rgship{234.000bp}") == len(KINDS)
    assert source.count("\\rgship{486.000bp}") == len(KINDS)


# --- the project file ---------------------------------------------------------------------------


def test_a_font_tex_does_not_have_is_one_clear_error(tmp_path: Path, monkeypatch):
    from reportgen.render.tex import LatexError

    monkeypatch.setitem(FIGURE_FONTS, "lmodern", ("", "LM", "no-such-font-xyz.tfm"))
    paper.font_missing.cache_clear()
    try:
        with pytest.raises(LatexError, match="font 'lmodern' is not installed"):
            paper.render_paper_figures(make_result(), tmp_path)
    finally:
        paper.font_missing.cache_clear()


def test_figures_table_of_the_project_file(tmp_path: Path):
    path = tmp_path / "reportgen.toml"
    path.write_text(
        '[figures]\ncolumn_width = "8.5cm"\ntext_width = 500\nfont_size = 10\n'
        'font = "palatino"\ncolormap = "BrBG"\n'
    )
    got = load_project(path).figures
    assert got == FigureSettings(
        column_width=round(8.5 * 72 / 2.54, 3),
        text_width=500.0,
        font_size=10.0,
        font="palatino",
        colormap="BrBG",
    )
    assert load_project(None).figures == FigureSettings()
    for text, field in (
        ('column_width = "3.25 furlongs"', "figures.column_width"),
        ("text_width = 10", "figures.text_width"),
        ("font_size = 30", "figures.font_size"),
        ('font = "comic"', "figures.font"),
        ('colormap = "jet"', "figures.colormap"),
        ("colour = 1", "figures.colour"),
    ):
        path.write_text(f"[figures]\n{text}\n")
        with pytest.raises(CaseError) as info:
            load_project(path)
        assert info.value.field == field, text


# --- study figures ------------------------------------------------------------------------------


def study_results():
    results = []
    for i, (bench, pattern, other_f) in enumerate(
        [
            ("arith", "URT", 0.7),
            ("arith", "OIT", -0.4),
            ("code", "URT+OIT", 1.2),
            ("facts", "none", -0.1),
        ]
    ):
        r = make_result(f"case-{i}", model="smollm2-135m-instruct", tags={"benchmark": bench})
        real = failure_pattern(r.attribution.relevance, r.attribution.special, [(1, 3)])
        faith = dataclasses.replace(
            r.faithfulness, failure_pattern=FailurePattern.from_json(dict(real, pattern=pattern))
        )
        metrics = tuple(
            dataclasses.replace(m, gini_relevance=0.2 + 0.1 * j + 0.05 * i)
            for j, m in enumerate(r.metrics)
        )
        comps = (dataclasses.replace(r.comparisons[0], model="gemma3-270m", explained=other_f),)
        results.append(
            dataclasses.replace(r, faithfulness=faith, metrics=metrics, comparisons=comps)
        )
    return results


def shipped_summaries() -> list[dict]:
    from reportgen.build import load_summaries

    return load_summaries([Path(__file__).resolve().parents[1] / "cases"])


def test_study_numbers_equal_the_summaries_and_comparisons():
    summaries = shipped_summaries()
    assert len(summaries) >= 3
    data = study.study_data(study_results(), summaries)
    cases = Path(__file__).resolve().parents[1] / "cases"
    raws = [json.loads(p.read_text()) for p in cases.rglob("summary.json")]
    for row in data.funnel:
        # one summary per benchmark and model (cases/<benchmark>/, cases/<family>/<benchmark>/)
        (raw,) = [r for r in raws if (r["benchmark"], r["model"]) == (row.benchmark, row.model)]
        funnel = raw["funnel"]
        assert (row.items, row.failed, row.pinned) == (
            funnel["items"],
            funnel["failed"],
            funnel["pinned"],
        )
        assert row.clean == funnel["failed"] - sum(funnel["not_clean_failure"].values())
        assert row.clean == funnel["searched"] + funnel["not_searched"]
    assert data.patterns == {
        "arith": {"URT": 1, "OIT": 1, "URT+OIT": 0, "none": 0},
        "code": {"URT": 0, "OIT": 0, "URT+OIT": 1, "none": 0},
        "facts": {"URT": 0, "OIT": 0, "URT+OIT": 0, "none": 1},
    }
    summary = data.summary
    assert summary["pairs"] == 4 and summary["persists"] == 2 and summary["share"] == 0.5
    assert all(row.models == ("smollm2-135m-instruct", "gemma3-270m") for row in data.persistence)
    # where the relevance went: the case's segment sums on each model
    assert data.persistence[0].segments == (
        {"instruction": pytest.approx(0.2 - 0.1 + 0.35 - 0.4 + 0.05)},
        {"instruction": -0.2},
    )
    (arith,) = [p for p in data.profiles if p.benchmark == "arith"]
    assert arith.cases == 2 and arith.mean[0] == pytest.approx(0.225)
    assert (arith.low[0], arith.high[0]) == pytest.approx((0.2, 0.25))
    assert study.model_size("Qwen2.5-0.5B-Instruct") == 0.5e9


@needs_tex
def test_study_paper_figures_print_the_same_numbers(tmp_path: Path):
    data = study.study_data(study_results(), shipped_summaries())
    files = study_paper.render_study_figures(data, tmp_path)
    assert "figures.tex" in files and "figures.zip" in files
    funnel = pdf_text(tmp_path / "study-funnel-text.pdf").split()
    for row in data.funnel:
        for value in (row.items, row.failed, row.clean, row.pinned):
            assert str(value) in funnel
    for pdf in tmp_path.glob("*.pdf"):
        width = 234.0 if pdf.stem.endswith("-col") else 486.0
        assert abs(pdf_width(pdf) - width) <= 0.02 * width
        assert min(word_heights(pdf))[0] >= 7.0, pdf.name
    tex = (tmp_path / "figures.tex").read_text()
    assert "persists ($f>0$) in 2 of 4 comparisons (50\\%)" in tex
    assert re.findall(r"\\label\{([^}]+)\}", tex) == [
        "fig:study:funnel",
        "fig:study:patterns",
        "fig:study:profiles",
        "fig:study:persistence",
    ]


def test_index_shows_the_funnel_and_persistence_numbers(tmp_path: Path):
    from reportgen.render.site import build_site

    summaries = shipped_summaries()
    # what the build copies in before the site is written: a case's and the study's figures
    for folder, pdf in (
        (tmp_path / "cases" / "case-0" / "figures", "case-0-heatmap-col.pdf"),
        (tmp_path / "figures", "study-funnel-col.pdf"),
    ):
        folder.mkdir(parents=True)
        for name in ("figures.tex", "figures.zip", pdf):
            (folder / name).write_bytes(b"x")
    build_site(study_results(), tmp_path, summaries=summaries)
    html = (tmp_path / "index.html").read_text()
    funnel = html[html.index('id="study-funnel"') :]
    funnel = funnel[: funnel.index("</table>")]
    for row in study.funnel_rows(summaries):
        cells = f'<td class="num">{row.items}</td><td class="num">{row.failed}</td><td class="num">{row.clean}</td><td class="num">{row.pinned}</td>'
        assert cells in funnel
    assert "persists (f &gt; 0) in 2 of 4 comparisons (50%)" in html
    for href in (
        "figures/figures.zip",
        "figures/figures.tex",
        "figures/study-funnel-col.pdf",
        "cases/case-0/figures/figures.zip",
    ):
        assert f'href="{href}"' in html, href
    dossier = (tmp_path / "cases" / "case-0" / "index.html").read_text()
    assert 'href="figures/figures.tex"' in dossier
    assert 'href="figures/case-0-heatmap-col.pdf"' in dossier


def test_cases_with_little_to_show_get_the_figures_they_can():
    only_special = make_result(
        "special", texts=["<s>", "</s>"], relevance=[1.0, -1.0], special=[True, True], full=False
    )
    names = [f.name for f in paper.case_figures(only_special, FigureSettings())]
    assert names == ["heatmap", "heatmap-grey"]  # no bar without a non-special token
    zeros = paper.case_figures(make_result("zeros", relevance=[0.0] * 9), FigureSettings())
    assert "every non-special token has $R=0$" in zeros[0].bodies["col"]
    assert [f.name for f in zeros] == list(KINDS)
