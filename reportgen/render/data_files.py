"""The downloadable files beside a dossier: data.json (every number), relevance.csv, the case
file, and for a graph graph.npz, edges.csv and the Neuronpedia graph JSON. Big arrays live here,
not inline in the page."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from ..graph.types import AttributionGraph
from ..results import CaseResult
from .names import SAFE_NAME
from .neuronpedia import neuronpedia_from_result
from .tokens import visible_controls
from .words import data_json

NEURONPEDIA_FILE = "graph.neuronpedia.json"


def relevance_csv(result: CaseResult) -> str:
    """relevance.csv, one row per token. Rows end in CRLF (RFC 4180): with a bare LF
    terminator Python's writer leaves a field holding a lone carriage return unquoted, and a
    token "\r" (real tokenizers have it) would split its row in two for every reader."""
    att = result.attribution
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(["position", "token", "token_id", "special", "relevance"])
    for i, (text, tid, special, rel) in enumerate(
        zip(att.token_texts, att.token_ids, att.special, att.relevance, strict=True)
    ):
        writer.writerow([i, visible_controls(text), tid, int(special), repr(float(rel))])
    return buf.getvalue()


def edges_csv(graph: AttributionGraph) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["source_layer", "source", "target_layer", "target", "weight"])
    for e in graph.edges():
        writer.writerow([e.source_layer, e.source, e.target_layer, e.target, repr(e.weight)])
    return buf.getvalue()


def case_file_name(result: CaseResult) -> str:
    """The case file's own name, stripped of any directory (it is written next to the page).
    Only a ``.toml`` name is kept: the page's own files (data.json, index.html, ...) do not end
    in .toml, so a case file named ``data.json`` cannot overwrite them."""
    name = Path(result.case_file).name
    ok = SAFE_NAME.fullmatch(name) and name.endswith(".toml") and name != ".toml"
    return name if ok else f"{result.case_id}.toml"


def write_data_files(result: CaseResult, out_dir: Path) -> list[dict[str, str]]:
    """data.json, relevance.csv and the case file; returns the downloads they make."""
    case_name = case_file_name(result)
    (out_dir / "data.json").write_text(data_json(result) + "\n", encoding="utf-8")
    (out_dir / "relevance.csv").write_text(relevance_csv(result), encoding="utf-8")
    (out_dir / case_name).write_text(result.case_toml, encoding="utf-8")
    downloads = [
        {"href": "data.json", "label": "data.json", "note": "every number on this page"},
        {"href": "relevance.csv", "label": "relevance.csv", "note": "input relevance per token"},
        {"href": case_name, "label": case_name, "note": "the case file"},
    ]
    if result.graph is not None:
        (out_dir / "graph.npz").write_bytes(result.graph.npz_bytes())
        downloads.append(
            {
                "href": "graph.npz",
                "label": "graph.npz",
                "note": "graph arrays (NumPy): nodes and edges",
            }
        )
        (out_dir / "edges.csv").write_text(edges_csv(result.graph), encoding="utf-8")
        downloads.append({"href": "edges.csv", "label": "edges.csv", "note": "graph edges"})
        (out_dir / NEURONPEDIA_FILE).write_text(
            json.dumps(neuronpedia_from_result(result), ensure_ascii=False, sort_keys=True) + "\n",
            encoding="utf-8",
        )
        downloads.append(
            {
                "href": NEURONPEDIA_FILE,
                "label": NEURONPEDIA_FILE,
                "note": "the graph for circuit-tracer's and Neuronpedia's graph viewer",
            }
        )
    pdf = Path("figures") / f"{result.case_id}.pdf"
    if (out_dir / pdf).is_file():
        downloads.insert(0, {"href": pdf.as_posix(), "label": pdf.name, "note": "PDF figure set"})
    from .paper import figure_downloads

    downloads[1:1] = figure_downloads(out_dir / "figures", "figures")
    downloads += pinned_figure_downloads(result, out_dir)
    return downloads


#: the build's figure of the case file's pinned subgraph (pinned_figure.py), by width
PINNED_FIGURES = {"column": "one column (3.25 in)", "text": "the text width (6.75 in)"}


def pinned_figure_downloads(result: CaseResult, out_dir: Path) -> list[dict[str, str]]:
    """The PDFs (and TikZ sources) of the case file's pinned subgraph where the build made
    them; ``kind`` marks them for the graph explorer, which offers them beside its own export."""
    out = []
    for name, width in PINNED_FIGURES.items():
        for suffix, what in ((".pdf", "PDF"), (".tex", "TikZ source")):
            path = Path("figures") / f"{result.case_id}-pinned-{name}{suffix}"
            if (out_dir / path).is_file():
                out.append(
                    {
                        "href": path.as_posix(),
                        "label": path.name,
                        "note": f"the case file's pinned subgraph, {width}: {what}",
                        "kind": "pinned-figure",
                    }
                )
    return out
