"""Cold build of a set of cases, seconds per stage, per case, and peak memory.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_build.py CASE.toml ... [--no-pdf]
    PYTHONPATH=. .venv/bin/python benchmarks/bench_build.py cases/*.toml --rebuild

Each case runs in its own process (so its peak RSS is its own) against a fresh, empty
REPORTGEN_CACHE (only the model files are linked in): result, graph and figure caches are cold,
as on a new machine. The stages are timed by wrapping the functions that do them:

    load        model load (reported apart: a build loads each model once)
    attribution AttnLRP relevance (reportgen.compute.attribute_prepared)
    graph       the attribution graph, less the two next stages' share of it
    metrics     pruning, graph metrics and neuron details
    faithful    flip test and deletion curves (reportgen.compute.faithfulness)
    compare     other models (reportgen.compute.compare_models)
    html        dossier page, charts and data files (reportgen.site.build_site)
    pdf         LaTeX figure set: vl-convert charts + pdflatex (render_latex)

``--rebuild`` builds each case a second time from the now warm cache, the way `reportgen build`
does, and prints that time too (target: <= 0.5 s per case). Prints a table and the medians."""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STAGES = ("load", "attribution", "graph", "metrics", "faithful", "compare", "html", "pdf")


def _timed(module, name: str, stage: str, times: dict[str, float]) -> None:
    """Wrap ``module.name`` so its seconds add up under ``stage``."""
    original = getattr(module, name, None)
    if original is None:
        return

    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            times[stage] = times.get(stage, 0.0) + time.perf_counter() - start

    setattr(module, name, wrapper)


def child(case_path: str, pdf: bool, out: Path) -> dict:
    """One case, cold: compute, render, figure set; returns seconds per stage and peak RSS."""
    from reportgen import build as build_mod
    from reportgen import compute, site
    from reportgen.cases import load_case
    from reportgen.graph import step as graph_step
    from reportgen.models import load_model
    from reportgen.render import latex

    times: dict[str, float] = {}
    inner: dict[str, float] = {}
    _timed(compute, "attribute_prepared", "attribution", times)
    _timed(compute, "faithfulness", "faithful", times)
    _timed(compute, "compare_models", "compare", times)
    _timed(compute, "compute_graph", "graph", times)
    for name in ("prune", "finish_pruning", "graph_metrics", "refine_neurons", "strongest_nodes"):
        _timed(graph_step, name, "metrics", inner)
    case = load_case(case_path)
    start = time.perf_counter()
    loaded = load_model(case.model)
    times["load"] = time.perf_counter() - start
    start = time.perf_counter()
    result = compute.compute_case(case, loaded, command="bench_build", load_other=load_model)
    compute_s = time.perf_counter() - start
    times["metrics"] = inner.get("metrics", 0.0)
    times["graph"] = times.get("graph", 0.0) - times["metrics"]
    key = compute.result_key(case, Path(case.path).read_text(encoding="utf-8"))
    compute.store_result(key, result)
    start = time.perf_counter()
    site.build_site([result], out / "site", failures=[])
    times["html"] = time.perf_counter() - start
    if pdf:
        start = time.perf_counter()
        build_mod._cached_figures(result, latex.render_latex)
        times["pdf"] = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # KiB -> GiB
    return {
        "case": case.id,
        "tokens": len(result.attribution.token_ids),
        "compute_s": compute_s,
        "stages": times,
        "peak_gb": peak,
    }


def rebuild(case_path: str, pdf: bool, out: Path) -> float:
    """`reportgen build` of the case again, everything from the warm cache."""
    from reportgen.build import build

    start = time.perf_counter()
    build([case_path], out / "rebuilt", pdf=pdf, progress=False)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("cases", nargs="+")
    parser.add_argument("--no-pdf", action="store_true")
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    pdf = not args.no_pdf
    if args.child:
        out = Path(args.child)
        report = child(args.cases[0], pdf, out)
        if args.rebuild:
            report["rebuild_s"] = rebuild(args.cases[0], pdf, out)
        print("BENCH " + json.dumps(report), flush=True)
        return
    models = Path(os.environ.get("REPORTGEN_CACHE", Path.home() / ".cache/reportgen")) / "models"
    header = f"{'case':36} {'tokens':>6} " + " ".join(f"{s:>8}" for s in STAGES)
    header += f" {'total':>8} {'peak GB':>8}" + (f" {'rebuild':>8}" if args.rebuild else "")
    print(header, flush=True)
    rows = []
    for path in args.cases:
        with tempfile.TemporaryDirectory(prefix="bench-build-") as tmp:
            cache = Path(tmp) / "cache"
            cache.mkdir()
            (cache / "models").symlink_to(models.resolve())
            env = dict(os.environ, REPORTGEN_CACHE=str(cache))
            command = [sys.executable, __file__, path, "--child", tmp]
            command += ["--no-pdf"] if not pdf else []
            command += ["--rebuild"] if args.rebuild else []
            proc = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        lines = [line for line in proc.stdout.splitlines() if line.startswith("BENCH ")]
        if proc.returncode != 0 or not lines:
            print(f"{path}: failed: {proc.stderr.strip().splitlines()[-1:]}", flush=True)
            continue
        row = json.loads(lines[-1][6:])
        rows.append(row)
        stages = row["stages"]
        total = sum(v for k, v in stages.items() if k != "load")
        line = f"{row['case'][:36]:36} {row['tokens']:6d} "
        line += " ".join(f"{stages.get(s, 0.0):8.2f}" for s in STAGES)
        line += f" {total:8.2f} {row['peak_gb']:8.2f}"
        if args.rebuild:
            line += f" {row['rebuild_s']:8.2f}"
        print(line, flush=True)
    if rows:
        totals = [sum(v for k, v in r["stages"].items() if k != "load") for r in rows]
        print(
            f"median per case (without model load): {statistics.median(totals):.2f} s over "
            f"{len(rows)} cases; max peak {max(r['peak_gb'] for r in rows):.2f} GB"
        )
        for stage in STAGES:
            values = [r["stages"].get(stage, 0.0) for r in rows]
            print(
                f"  {stage:12} median {statistics.median(values):7.2f} s  sum {sum(values):8.2f} s"
            )
        if args.rebuild:
            print(
                f"median rebuild from cache: {statistics.median(r['rebuild_s'] for r in rows):.2f} s"
            )


if __name__ == "__main__":
    main()
