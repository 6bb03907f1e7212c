"""`reportgen build` end to end on a tiny local model: caching, --keep-going, atomic swap."""

import json

import pytest
from click.testing import CliRunner
from tiny_models import save_tiny_llama

from reportgen import build as build_module
from reportgen.cli import main

CASE = """
id = "{id}"
title = "Tiny case {id}"
model = "{model}"
prompt = "{prompt}"
target = "paris"
contrast = "lyon"
bos = true
segments = {{ question = [1, 4] }}
tags = {{ benchmark = "toy" }}
"""


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_llama(tmp_path_factory.mktemp("tiny-build"))


def write_cases(folder, model_dir, hostile=False):
    folder.mkdir(exist_ok=True)
    (folder / "a.toml").write_text(
        CASE.format(id="case-a", model=model_dir, prompt="the capital of france is")
    )
    prompt = (
        "<script>alert(1)</script> \\\\input{/etc/passwd} $ % # _ { } ~ ^ 😀 中文 is"
        if hostile
        else "list three primary colors"
    )
    (folder / "b.toml").write_text(CASE.format(id="case-b", model=model_dir, prompt=prompt))
    return folder


def test_build_keep_going_reports_the_broken_case(model_dir, tmp_path):
    cases = write_cases(tmp_path / "cases", model_dir, hostile=True)
    (cases / "broken.toml").write_text('id = "broken"\nmodel = "m"\nprompt = "p"\n')
    (cases / "toy").mkdir()  # what `reportgen collect` leaves beside its cases
    funnel = {"items": 7, "failed": 5, "not_clean_failure": {"not finished": 1}, "pinned": 2}
    (cases / "toy" / "summary.json").write_text(
        json.dumps({"benchmark": "toy", "model": "tiny", **funnel, "funnel": funnel})
    )
    out = tmp_path / "site"
    result = CliRunner().invoke(main, ["build", str(cases), "--out", str(out), "--keep-going"])
    assert result.exit_code == 1
    assert "broken.toml: field 'target': is required" in result.output
    index = (out / "index.html").read_text()
    assert "case-a" in index and "case-b" in index and "broken.toml" in index
    page = (out / "cases" / "case-b" / "index.html").read_text()
    assert "<script>alert(1)" not in page
    assert (out / "cases" / "case-b" / "figures" / "case-b.pdf").exists()
    # the paper figures of each case and the study figures of the site (from summary.json)
    assert (out / "cases" / "case-b" / "figures" / "case-b-heatmap-col.pdf").exists()
    assert (out / "cases" / "case-b" / "figures" / "figures.tex").exists()
    assert (out / "figures" / "study-funnel-text.pdf").exists()
    assert 'href="figures/figures.zip"' in index
    assert (
        '<td class="num">7</td><td class="num">5</td><td class="num">4</td><td class="num">2</td>'
        in index
    )
    data = json.loads((out / "cases" / "case-a" / "data.json").read_text())
    assert data["graph"]["layers"][0] == "emb" and data["metrics"]
    # the graph of the explained position carries f on the last node
    assert data["graph"]["node_relevance"][-1][-1] == pytest.approx(
        data["attribution"]["explained"], rel=1e-4
    )


def test_without_keep_going_the_first_error_stops_the_build(model_dir, tmp_path):
    cases = write_cases(tmp_path / "cases", model_dir)
    (cases / "broken.toml").write_text("garbage = [")
    result = CliRunner().invoke(main, ["build", str(cases), "--out", str(tmp_path / "site")])
    assert (
        result.exit_code == 1 and "broken.toml" in result.output and "invalid TOML" in result.output
    )
    assert not (tmp_path / "site").exists()


def test_rebuild_uses_the_cache_and_an_interrupted_build_keeps_the_old_site(
    model_dir, tmp_path, monkeypatch
):
    monkeypatch.setenv("REPORTGEN_CACHE", str(tmp_path / "fresh-cache"))
    cases = write_cases(tmp_path / "cases", model_dir)
    out = tmp_path / "site"
    first = build_module.build([cases], out, progress=False, pdf=False)
    assert sorted(first.built) == ["case-a", "case-b"] and not first.cached
    before = (out / "index.html").read_text()

    def no_model(spec):
        raise AssertionError("a cached case must not load the model")

    monkeypatch.setattr("reportgen.models.load_model", no_model)  # what the runner calls
    second = build_module.build([cases], out, progress=False, pdf=False)
    assert sorted(second.cached) == ["case-a", "case-b"] and not second.built
    assert (out / "index.html").read_text() == before  # deterministic

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("reportgen.render.site.build_site", crash)
    with pytest.raises(KeyboardInterrupt):
        build_module.build([cases], out, progress=False, pdf=False)
    assert (out / "index.html").read_text() == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".site.staging")]
