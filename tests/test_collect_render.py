"""Hand-written and collected cases alike show their f, and a near-tie (|f| < 1: the model barely
prefers its token, below the clean-case threshold) is labelled as such on the dossier and the
index; the number comes from the result, the words from the render layer."""

from __future__ import annotations

import dataclasses

from render_fixtures import make_result

from reportgen.render.html import near_tie, render_dossier
from reportgen.render.site import build_site


def _with_f(case_id: str, f: float):
    result = make_result(case_id)
    return dataclasses.replace(
        result, attribution=dataclasses.replace(result.attribution, explained=f)
    )


def test_near_tie_words():
    assert near_tie(0.07).startswith("near-tie") and near_tie(-0.5).startswith("near-tie")
    assert near_tie(1.0) == near_tie(3.2) == near_tie(None) == ""


def test_dossier_and_index_label_near_ties(tmp_path):
    tie, clear = _with_f("tie-case", 0.0694), _with_f("clear-case", 2.5)
    assert "near-tie" in render_dossier(tie, tmp_path / "tie").read_text()
    assert "near-tie" not in render_dossier(clear, tmp_path / "clear").read_text()
    index = build_site([tie, clear], tmp_path / "site").read_text()
    # the case table's rows (the study tables name the cases too, in rows of their own)
    table = index.split('id="case-table"', 1)[1].split("</table>", 1)[0]
    rows = [row.split("</tr>")[0] for row in table.split("<tr")[1:]]
    tie_row = next(r for r in rows if "tie-case" in r)
    clear_row = next(r for r in rows if "clear-case" in r)
    assert "near-tie" in tie_row and "+0.0694" in tie_row
    assert "near-tie" not in clear_row and "+2.5" in clear_row
