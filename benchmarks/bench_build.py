"""Cold build of a set of cases, seconds per stage, per case, and peak memory.

    .venv/bin/python benchmarks/bench_build.py CASE.toml ... [--no-pdf] [--keep DIR]
    .venv/bin/python benchmarks/bench_build.py cases/*.toml --rebuild

Each case runs in its own process (so its peak RSS is its own) against a fresh, empty
REPORTGEN_CACHE (only the model files are linked in): result, graph and figure caches are cold,
as on a new machine. The stages are timed by wrapping the functions that do them:

    load        model load (reported apart: a build loads each model once)
    attribution AttnLRP relevance (reportgen.compute.attribute_prepared; when the graph is
                computed its trace is that pass, attribution_from only reads it, and the pass's
                seconds count under graph)
    graph       the attribution graph, less the two next stages' share of it
    metrics     pruning, graph metrics and neuron details
    faithful    flip test and deletion curves (reportgen.compute.faithfulness)
    compare     other models (reportgen.compute.compare_models)
    ablate      interventions: the graph's nodes ablated (reportgen.interventions.case_interventions)
    continue    greedy continuations after target and contrast (continuations.case_continuations)
    html        dossier page, charts and data files (reportgen.render.site.build_site)
    pdf         LaTeX figure set: vl-convert charts + pdflatex (render_latex)

``--keep DIR`` keeps what each case built (its site, figure set and result cache) in
DIR/<case file name without .toml>, to open the dossier afterwards; otherwise it goes with the temporary folder.

``--rebuild`` builds each case a second time from the now warm cache, the way `reportgen build`
does, and prints that time too (target: <= 0.5 s per case). Prints a table, the medians, and
each stage's peak resident memory (sampled every 20 ms: which stage sets the peak)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

STAGES = (
    "load",
    "attribution",
    "graph",
    "metrics",
    "faithful",
    "compare",
    "ablate",
    "continue",
    "html",
    "pdf",
)


class StagePeaks:
    """Resident memory sampled every 20 ms, the highest value kept for the innermost stage
    running at that moment: which stage sets a case's peak (ru_maxrss says only how high).
    A stage shorter than one sample may show 0; Linux only (/proc/self/statm)."""

    def __init__(self) -> None:
        self.stack: list[str] = []
        self.peaks: dict[str, float] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    @staticmethod
    def rss_gb() -> float:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1024**3

    def _sample(self) -> None:
        while not self.stop.wait(0.02):
            rss = self.rss_gb()
            top = self.stack[-1:]  # one read: the main thread may pop in between two
            if top:
                self.peaks[top[0]] = max(self.peaks.get(top[0], 0.0), rss)

    def close(self) -> None:
        self.stop.set()
        self.thread.join()

    @contextlib.contextmanager
    def stage(self, name: str, times: dict[str, float]):
        start = time.perf_counter()
        self.stack.append(name)
        try:
            yield
        finally:
            self.stack.pop()
            times[name] = times.get(name, 0.0) + time.perf_counter() - start


def _timed(module, name: str, stage: str, times: dict[str, float], peaks: StagePeaks) -> None:
    """Wrap ``module.name`` so its seconds add up under ``stage``."""
    original = getattr(module, name, None)
    if original is None:
        return

    def wrapper(*args, **kwargs):
        with peaks.stage(stage, times):
            return original(*args, **kwargs)

    setattr(module, name, wrapper)


def child(case_path: str, pdf: bool, out: Path) -> dict:
    """One case, cold: compute, render, figure set; returns seconds per stage and peak RSS."""
    from reportgen import build as build_mod
    from reportgen import compute, interventions
    from reportgen.cases import load_case
    from reportgen.graph import step as graph_step
    from reportgen.models import load_model
    from reportgen.render import latex, site

    times: dict[str, float] = {}
    inner: dict[str, float] = {}
    peaks = StagePeaks()
    _timed(compute, "attribute_prepared", "attribution", times, peaks)
    _timed(compute, "attribution_from", "attribution", times, peaks)
    _timed(compute, "faithfulness", "faithful", times, peaks)
    _timed(compute, "compare_models", "compare", times, peaks)
    _timed(interventions, "case_interventions", "ablate", times, peaks)
    _timed(interventions, "case_continuations", "continue", times, peaks)
    _timed(compute, "compute_graph", "graph", times, peaks)
    for name in ("prune", "finish_pruning", "graph_metrics", "refine_neurons", "strongest_nodes"):
        _timed(graph_step, name, "metrics", inner, peaks)
    case = load_case(case_path)
    with peaks.stage("load", times):
        loaded = load_model(case.model)
    start = time.perf_counter()
    result = compute.compute_case(case, loaded, command="bench_build", load_other=load_model)
    compute_s = time.perf_counter() - start
    times["metrics"] = inner.get("metrics", 0.0)
    times["graph"] = times.get("graph", 0.0) - times["metrics"]
    key = compute.result_key(case, Path(case.path).read_text(encoding="utf-8"))
    compute.store_result(key, result)
    with peaks.stage("html", times):
        site.build_site([result], out / "site", failures=[])
    if pdf:
        with peaks.stage("pdf", times):
            build_mod._cached_figures(result, latex.render_latex)
    peaks.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # KiB -> GiB
    return {
        "case": case.id,
        "tokens": len(result.attribution.token_ids),
        "compute_s": compute_s,
        "stages": times,
        "peak_gb": peak,
        "stage_peak_gb": peaks.peaks,
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
    parser.add_argument("--keep", type=Path, help="keep each case's build in KEEP/<case file stem>")
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
            if args.keep is not None and proc.returncode == 0:
                kept = args.keep / Path(path).stem
                shutil.rmtree(kept, ignore_errors=True)
                shutil.copytree(tmp, kept, symlinks=True)
                print(f"kept in {kept}", flush=True)
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
            peak = max(r["stage_peak_gb"].get(stage, 0.0) for r in rows)
            print(
                f"  {stage:12} median {statistics.median(values):7.2f} s  sum {sum(values):8.2f} s"
                f"  peak {peak:6.2f} GB"
            )
        for label, stages in (
            ("interventions (ablate)", ("ablate",)),
            ("interventions + continuations", ("ablate", "continue")),
        ):
            shares = [
                sum(r["stages"].get(stage, 0.0) for stage in stages) / total
                for r, total in zip(rows, totals, strict=True)
                if total > 0
            ]
            if shares:
                print(
                    f"{label}: median {statistics.median(shares):.1%} of a case's cold build "
                    "(without model load; target <= 25%)"
                )
        if args.rebuild:
            print(
                f"median rebuild from cache: {statistics.median(r['rebuild_s'] for r in rows):.2f} s"
            )


if __name__ == "__main__":
    main()
