"""Quick mode against the full dossier: `reportgen run CASE --fast` vs `reportgen run CASE`,
cold, side by side in one run, and whether their attribution and graph numbers agree.

    .venv/bin/python benchmarks/bench_fast.py [cases/primary-colors-yellow.toml] [--pdf] [--repeat N]

Each run is a fresh process (`python -m reportgen.cli run ...`, model load included) with its own
empty result cache, so both compute everything they show; the model, its remembered content
hash, the chart runtime (the vega bundle, built once per vl-convert version) and the compiled
page templates are in it already, as on any machine that has built a dossier before: the question is what a NEW case
costs. The two modes alternate ``--repeat`` times (default 2); min, median and max of each, and
the ratio of the medians, are printed. Without
``--pdf`` both skip the PDF figure set, so the ratio is that of the computing alone; with it the
full run compiles its figure set as a default `run` does. The issue's target: quick mode at
least 4x faster on a short case, with the same attribution and graph numbers."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: what quick mode leaves out of data.json by design, and what differs between two runs anyway
SKIPPED = ("faithfulness", "failure_pattern")
PER_RUN = ("command", "model_source", "quick_mode_skipped", "timings", "wall_s")


def run(case: Path, out: Path, cache: Path, *flags: str) -> float:
    env = dict(os.environ, REPORTGEN_CACHE=str(cache))
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "reportgen.cli", "run", str(case), "--out", str(out), *flags],
        env=env,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"run {' '.join(flags)} failed: {done.stderr.strip()[-400:]}")
    return seconds


def numbers(site: Path) -> dict:
    (path,) = site.glob("cases/*/data.json")
    data = json.loads(path.read_text(encoding="utf-8"))
    for key in SKIPPED:
        data.pop(key, None)
    for key in PER_RUN:
        data.get("environment", {}).pop(key, None)
    return {k: data[k] for k in ("attribution", "graph", "metrics", "neurons") if k in data}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case", nargs="?", default=str(ROOT / "cases/primary-colors-yellow.toml"))
    parser.add_argument("--pdf", action="store_true", help="the full run compiles its PDF too")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each mode (alternating)")
    args = parser.parse_args()
    from reportgen.models import cache_dir
    from reportgen.render.html import environment, vega_bundle

    vega_bundle()  # into this machine's cache, if it is not there yet
    pages = environment()
    for name in pages.list_templates():  # compiled into this machine's cache, likewise
        pages.get_template(name)
    models = (cache_dir() / "models").resolve()
    assets = cache_dir() / "assets"
    templates = cache_dir() / "templates"
    case = Path(args.case).resolve()
    hashes = cache_dir() / "content-hashes.json"  # the model's sha256, remembered by path
    with tempfile.TemporaryDirectory(prefix="bench-fast-") as tmp:
        work = Path(tmp)
        seconds: dict[str, list[float]] = {"fast": [], "full": []}
        for attempt in range(args.repeat):
            for name, flags in (("fast", ["--fast"]), ("full", [] if args.pdf else ["--no-pdf"])):
                cache = work / f"cache-{name}-{attempt}"
                cache.mkdir()
                (cache / "models").symlink_to(models)
                if assets.is_dir():  # the chart runtime, bundled once per vl-convert version
                    shutil.copytree(assets, cache / "assets")
                if templates.is_dir():  # compiled page templates, kept once per machine
                    shutil.copytree(templates, cache / "templates")
                if hashes.is_file():
                    shutil.copy(hashes, cache / hashes.name)
                site = work / f"site-{name}-{attempt}"
                seconds[name].append(run(case, site, cache, *flags))
                print(f"{name:>5} run {attempt + 1}: {seconds[name][-1]:7.1f} s", flush=True)
        same = numbers(work / "site-fast-0") == numbers(work / "site-full-0")
    for name, times in seconds.items():
        print(
            f"{name:>5}: min {min(times):.1f}  median {statistics.median(times):.1f}  "
            f"max {max(times):.1f} s"
        )
    ratio = statistics.median(seconds["full"]) / statistics.median(seconds["fast"])
    print(f"speed-up full / fast (medians): {ratio:.1f}x (target >= 4x)")
    print(f"attribution, graph, metrics, neurons: {'identical' if same else 'DIFFERENT'}")


if __name__ == "__main__":
    main()
