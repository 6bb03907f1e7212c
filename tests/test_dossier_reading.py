"""A dossier a reader understands in 30 seconds: the summary at the top (what went wrong, the flip
sentence, the strongest tokens), a collected case's two outputs with the benchmark's verdicts and
the swapped token marked, no empty tags, and an explanation for every number shown."""

from __future__ import annotations

import dataclasses
import json
import re
import tomllib
from html.parser import HTMLParser
from pathlib import Path

import pytest
from render_fixtures import CASES, collected_result, make_result, sample_result

from reportgen.render import charts
from reportgen.render.html import NEAR_TIE, render_dossier
from reportgen.render.site import build_site
from reportgen.render.summary import (
    GLOSSARY,
    SHOWN_METRICS,
    conservation_note,
    parts,
    plain,
    split_at_swap,
    what_went_wrong,
)
from reportgen.render.summary import (
    NEAR_TIE as SUMMARY_NEAR_TIE,
)
from reportgen.render.words import data_json
from reportgen.results import FailurePattern


class Page(HTMLParser):
    """The elements of a page in document order: (tag, attrs, text inside), plus the text of
    each element with an id."""

    VOID = {"meta", "link", "br", "input", "img", "hr"}

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[list] = []  # [tag, attrs, text]
        self.open: list[list] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        element = [tag, dict(attrs), ""]
        self.elements.append(element)
        if tag not in self.VOID:
            self.open.append(element)

    def handle_endtag(self, tag):
        while self.open:
            if self.open.pop()[0] == tag:
                break

    def handle_data(self, data):
        if self.open and self.open[-1][0] in ("script", "style"):
            return
        for element in self.open:
            element[2] += data

    def by_id(self, element_id: str) -> list:
        (found,) = [e for e in self.elements if e[1].get("id") == element_id]
        return found

    def index(self, element_id: str) -> int:
        return next(i for i, e in enumerate(self.elements) if e[1].get("id") == element_id)

    def with_class(self, name: str) -> list[list]:
        return [e for e in self.elements if name in (e[1].get("class") or "").split()]


def render(result, tmp_path: Path, name: str) -> tuple[Page, str]:
    html = render_dossier(result, tmp_path / name).read_text(encoding="utf-8")
    return Page(html), html


def test_summary_comes_first_and_says_what_went_wrong(tmp_path: Path) -> None:
    result = sample_result()  # the real SmolLM2 result: ' Y' over ' Blue'
    page, _ = render(result, tmp_path, "sample")
    att = result.attribution
    what = " ".join(page.by_id("summary-what")[2].split())
    assert what == (
        f"The model prefers ' Y' to ' Blue' by f = {att.explained:+.3g} logits "
        f"(p = {100 * att.target.prob:.1f} % vs {100 * att.contrast.prob:.1f} %)."
    )
    # the strongest input tokens by |R|, strongest first, linked to their heatmap cells
    links = [e for e in page.elements[page.index("summary-tokens") :] if "tok-chip" in str(e[1])]
    ranked = sorted(
        (i for i, s in enumerate(att.special) if not s), key=lambda i: -abs(att.relevance[i])
    )
    assert [e[1]["href"] for e in links[:3]] == [f"#tok-{i}" for i in ranked[:3]]
    assert links[0][2] == "Red" and f"tok-{ranked[0]}" in [e[1].get("id") for e in page.elements]
    # before any chart, any section, the explorer
    first_chart = min(i for i, e in enumerate(page.elements) if "chart" in e[1].get("class", ""))
    assert page.index("summary") < page.index("prediction") < first_chart


def test_summary_evidence_is_the_flip_sentence(tmp_path: Path) -> None:
    result = make_result()
    page, _ = render(result, tmp_path, "synthetic")
    evidence = " ".join(page.by_id("summary-evidence")[2].split())
    # the fixture masks positions 1 and 2 ("List", " three") and flips at k = 2
    assert evidence.startswith(
        "Evidence: Masking 2 tokens — 'List', ' three' — flips the preference to the contrast"
    )
    assert "random order needs 5.5 on average" in evidence
    # the same sentence data.json carries, only capitalised: data.json is not changed
    sentence = json.loads(data_json(result))["faithfulness"]["sentence"]
    assert evidence.startswith("Evidence: " + sentence[0].upper() + sentence[1:])
    # no faithfulness: no evidence line, the summary stays
    bare, _ = render(make_result(full=False), tmp_path, "bare")
    assert "summary-what" in [e[1].get("id") for e in bare.elements]
    assert "summary-evidence" not in [e[1].get("id") for e in bare.elements]


@pytest.mark.parametrize(
    ("case_file", "target_mark", "contrast_mark", "absent"),
    [
        ("humaneval/humaneval-30.toml", "l", "lst", False),
        # the model stops (end of turn): the marker stands where the token was generated; the
        # contrast is a space, shown visibly
        ("instructions/ifeval-bullets-2-rain.toml", "\u27e8<|im_end|>\u27e9", "\u2423", True),
    ],
)
def test_collected_case_shows_both_outputs_with_verdicts(
    tmp_path: Path, case_file: str, target_mark: str, contrast_mark: str, absent: bool
) -> None:
    source = tomllib.loads((CASES / case_file).read_text(encoding="utf-8"))["source"]
    prefix = tomllib.loads((CASES / case_file).read_text(encoding="utf-8"))["prefix"]
    page, _ = render(collected_result(case_file), tmp_path, "collected")
    assert page.index("outputs") < page.index("prediction")
    for kind, output, verdict, mark in (
        ("target", source["failing_output"], source["verdict_target"], target_mark),
        ("contrast", source["recovering_output"], source["verdict_contrast"], contrast_mark),
    ):
        start = page.index(f"output-{kind}")
        figure = page.elements[start]
        inside = [e for e in page.elements[start:] if e[0] in ("span", "pre", "mark")][:8]
        badge = next(e for e in inside if "badge" in e[1].get("class", ""))
        assert badge[2] == verdict
        assert ("badge-pass" if kind == "contrast" else "badge-fail") in badge[1]["class"]
        swap = next(e for e in inside if e[0] == "mark")
        assert swap[2] == mark
        assert ("swap-absent" in swap[1]["class"]) == (absent and kind == "target")
        pre = next(e for e in inside if e[0] == "pre")
        # the output text is all there, the swap marked right after the response prefix
        before = pre[2].split(mark)[0]
        assert before == prefix
        shown = pre[2].replace("\u27e8<|im_end|>\u27e9", "").replace("\u2423", " ")
        assert shown == output
        assert kind in figure[1]["class"]
    # a hand-written case has no outputs section
    plain, _ = render(make_result(), tmp_path, "plain")
    assert "outputs" not in [e[1].get("id") for e in plain.elements]


def test_swap_found_where_the_outputs_part() -> None:
    # the prefix does not match (decoded differently): the place where the outputs part, moved
    # back to where both tokens start
    split = split_at_swap("def f(l): pass", "def  f(", "l", "def f(lst): pass", "lst")
    assert split == {"before": "def f(", "token": "l", "after": "): pass", "in_text": True}
    assert split_at_swap("abc", "zz", "q", "xyz", "r") is None


def test_no_empty_tags(tmp_path: Path) -> None:
    result = collected_result()  # tags = { benchmark = "humaneval", pattern = "" }
    assert result.tags["pattern"] == ""
    page, _ = render(result, tmp_path, "collected")
    tags = page.with_class("tag") + page.with_class("badge")
    assert tags and all(t[2].strip() and not t[2].strip().endswith(":") for t in tags)
    assert not any("pattern" in t[2] for t in tags)
    index = Page(build_site([result, make_result("other")], tmp_path / "site").read_text())
    pills = index.with_class("tag")
    assert pills and all(p[2].strip() for p in pills)
    assert [p[2] for p in pills].count("URT") == 1  # the other case's pattern is shown


def test_every_number_has_an_explanation(tmp_path: Path) -> None:
    result = make_result()
    pattern = FailurePattern(
        pattern="URT",
        relevant_share=0.1,
        token_share=0.5,
        relevant_sum=0.25,
        top_outside=1,
        top_outside_share=0.4,
        mean_rank_fraction=0.6,
        relevant_abs=0.3,
        outside_push=0.2,
    )
    faith = dataclasses.replace(result.faithfulness, failure_pattern=pattern)
    page, html = render(dataclasses.replace(result, faithfulness=faith), tmp_path, "full")
    glossary = {e[1]["id"][2:]: e[2] for e in page.elements if e[1].get("id", "").startswith("g-")}
    for key in ("f", "reaches", "sum", "flip_k", "aopc", "urt", "oit", "relevance", "logit"):
        assert key in glossary, key
    terms = [e for e in page.elements if "data-term" in e[1]]
    used = {t[1]["data-term"] for t in terms}
    assert {"f", "reaches", "sum", "flip_k", "aopc", "urt", "oit", "logit"} <= used
    for t in terms:
        key = t[1]["data-term"]
        assert t[1]["title"] == GLOSSARY[key][1] and t[1]["href"] == f"#g-{key}"
        assert key in glossary  # the link lands on an entry of this page's glossary
    # "reaches the input" has its number explained in words next to it
    assert "of f reaches the input tokens" in page.by_id("conservation-note")[2]


def test_shown_metrics_are_few_and_explained(tmp_path: Path) -> None:
    result = make_result()
    page, html = render(result, tmp_path, "full")
    spec = charts.metrics_chart(result).to_dict()
    drawn = list(dict.fromkeys(v["metric"] for v in spec["data"]["values"]))
    assert drawn == [GLOSSARY[key][0] for _, key in SHOWN_METRICS]
    assert 3 <= len(drawn) <= 4
    # hubs_90 (a list of positions) is drawn as its length
    hubs = [v["value"] for v in spec["data"]["values"] if v["metric"] == GLOSSARY["hubs"][0]]
    assert hubs == [float(len(m.hubs_90)) for m in result.metrics]
    # each drawn metric is listed above the charts with its sentence
    section = page.elements[page.index("metrics") : page.index("faithfulness")]
    pairs = [(section[i], section[i + 2]) for i, e in enumerate(section) if e[0] == "dt"]
    assert [dt[2] for dt, _ in pairs] == drawn
    assert [dd[2] for _, dd in pairs] == [GLOSSARY[key][1] for _, key in SHOWN_METRICS]
    # the metrics left out are still every one in data.json, with their numbers
    data = json.loads((tmp_path / "full" / "data.json").read_text())
    assert data["metrics"] == [m.to_json() for m in result.metrics]
    assert not any(v["metric"] in ("gini_out", "edges_in") for v in spec["data"]["values"])


def test_reaches_the_input_words() -> None:
    assert NEAR_TIE == SUMMARY_NEAR_TIE
    # the case: a near-tie whose relevance sum is 12 times f, the other way
    note = conservation_note(-0.837, 0.0694)
    assert "near-tie" in note and "-0.837" in note
    assert "other sign" in conservation_note(-2.0, 3.0)
    assert "larger than f" in conservation_note(6.0, 3.0)
    assert (
        conservation_note(1.5, 3.0)
        .replace("\u00a0", " ")
        .startswith("50.0 % of f reaches the input tokens")
    )


def test_data_json_is_unchanged_by_the_page(tmp_path: Path) -> None:
    result = collected_result()
    render_dossier(result, tmp_path / "a")
    written = (tmp_path / "a" / "data.json").read_text(encoding="utf-8")
    assert written == data_json(result) + "\n"
    for word in ("summary", "glossary", "what_parts", "conservation_note"):
        assert f'"{word}"' not in written
    # a result with the pattern tag empty keeps it in data.json (only the page hides it)
    assert json.loads(written)["tags"]["pattern"] == ""
    other = dataclasses.replace(result, tags={"benchmark": "humaneval"})
    assert re.search(r'"pattern"', data_json(other)) is None


def test_what_went_wrong_in_each_kind_of_case() -> None:
    collected = collected_result()
    assert " ".join(plain(what_went_wrong(collected)).split()) == (
        "At output token 8 the model writes 'l' where 'lst' would recover (f = +2.07): "
        "with 'l' its answer fails (AssertionError), with 'lst' it passes."
    )
    result = make_result()
    att = result.attribution
    tie = dataclasses.replace(result, attribution=dataclasses.replace(att, explained=0.3))
    assert plain(what_went_wrong(tie)).endswith("— a near-tie.")
    wrong_way = dataclasses.replace(result, attribution=dataclasses.replace(att, explained=-0.5))
    assert "does not prefer ' Yellow' to ' Blue'" in plain(what_went_wrong(wrong_way))
    alone = dataclasses.replace(
        result,
        attribution=dataclasses.replace(
            att, contrast=None, mode="max_logit", objective="logit(target)", explained=10.5
        ),
    )
    words = " ".join(plain(what_went_wrong(alone)).split())
    assert words == "The model predicts ' Yellow' (p = 40.0 %); f = logit(target) = +10.5."
    # a quoted token is one piece on the page (no line break inside ' Blue')
    pieces = parts(what_went_wrong(result))
    assert [p["text"] for p in pieces if p["tok"]] == ["' Yellow'", "' Blue'"]
