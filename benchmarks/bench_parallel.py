"""Cases per minute of `reportgen build` with 1 and 2 local workers and with Ray on 2 CPUs.

    flock /tmp/reportgen-heavy.lock nice -n 10 .venv/bin/python benchmarks/bench_parallel.py \
        [--cases 8] [--configs local1 local2 ray2] [--collect arithmetic --limit 8]

With ``--collect BENCHMARK``: `reportgen collect` of the first ``--limit`` items on the embedded
model instead (items per minute), each configuration with a fresh journal; the case files and
summary.json (less its timings) of every configuration are compared.

The same shipped short cases (the N shortest prompts of cases/*.toml) are built once per
configuration, each into a private fresh result cache (the model cache is shared), without the
PDF figure set, so every case is computed. The time of a configuration is the whole compute
step (worker start-up and model loads included); Ray's own start (ray.init) is printed apart.
Afterwards the data.json files of every configuration are compared: they must be identical."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = {"local1": ("local", 1), "local2": ("local", 2), "ray2": ("ray", 2)}


def short_cases(count: int) -> list[Path]:
    """The ``count`` shipped cases with the shortest prompt + prefix (all on one model)."""
    files = sorted((ROOT / "cases").glob("*.toml"))
    sized = []
    for path in files:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        if (
            data.get("compare")
            or data.get("model", "smollm2-135m-instruct") != "smollm2-135m-instruct"
        ):
            continue
        sized.append((len(data.get("prompt", "")) + len(data.get("prefix", "")), path.name, path))
    return [path for _, _, path in sorted(sized)[:count]]


def run_config(name: str, cases: Path, work: Path, models: Path) -> tuple[float, float, Path]:
    from reportgen.build import build
    from reportgen.runner import Execution

    executor, jobs = CONFIGS[name]
    cache = work / f"cache-{name}"
    cache.mkdir()
    (cache / "models").symlink_to(models)
    os.environ["REPORTGEN_CACHE"] = str(cache)
    ray_start = 0.0
    if executor == "ray":
        import ray

        started = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        ray_start = time.perf_counter() - started
    out = work / f"site-{name}"
    started = time.perf_counter()
    try:
        report = build([cases], out, pdf=False, progress=False, execution=Execution(executor, jobs))
    finally:
        if executor == "ray":
            import ray

            ray.shutdown()
    seconds = time.perf_counter() - started
    if report.failures or report.cached:
        raise SystemExit(f"{name}: {report.failures or 'served from cache'}")
    return seconds, ray_start, out


def run_collect(
    name: str, benchmark: str, limit: int, work: Path, models: Path
) -> tuple[float, Path]:
    from reportgen.collect.driver import collect
    from reportgen.runner import Execution

    executor, jobs = CONFIGS[name]
    cache = work / f"cache-{name}"
    cache.mkdir()
    (cache / "models").symlink_to(models)
    os.environ["REPORTGEN_CACHE"] = str(cache)
    out = work / f"collected-{name}"
    if executor == "ray":  # started apart: its start is not collect's time
        import ray

        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    started = time.perf_counter()
    try:
        collect(
            benchmark,
            ["smollm2-135m-instruct"],
            limit=limit,
            out=out,
            execution=Execution(executor, jobs, None),
        )
    finally:
        if executor == "ray":
            import ray

            ray.shutdown()
    return time.perf_counter() - started, out / benchmark


def collected_files(folder: Path) -> tuple[dict[str, bytes], dict]:
    import json

    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    summary.pop("wall_s")
    for run in summary["runs"]:
        run.pop("wall_s"), run.pop("generation_s")
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.toml"))}, summary


def main_collect(args: argparse.Namespace, models: Path) -> None:
    print(f"collect {args.collect}: the first {args.limit} items; {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(prefix="bench-parallel-") as tmp:
        work = Path(tmp)
        timings, folders = {}, {}
        for name in args.configs:
            timings[name], folders[name] = run_collect(name, args.collect, args.limit, work, models)
            rate = 60 * args.limit / timings[name]
            print(f"{name:>7}: {timings[name]:7.1f} s  {rate:6.2f} items/min", flush=True)
        first = args.configs[0]
        for name in args.configs[1:]:
            same = collected_files(folders[name]) == collected_files(folders[first])
            print(f"cases + summary {name} vs {first}: {'identical' if same else 'DIFFERENT'}")
    if "local1" in timings and "local2" in timings:
        print(f"speed-up local2 / local1: {timings['local1'] / timings['local2']:.2f}x")
    if "local2" in timings and "ray2" in timings:
        print(f"ray2 / local2 items per minute: {timings['local2'] / timings['ray2']:.2f}")


#: where each configuration differs by construction: its own --out folder in the recorded
#: command and its own cache folder as the model's source path; every number is compared
PER_RUN_FIELDS = ("command", "model_source")


def data_files(site: Path) -> dict[str, dict]:
    import json

    files = {}
    for path in sorted(site.glob("cases/*/data.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        for field in PER_RUN_FIELDS:
            data["environment"].pop(field)
        files[path.parent.name] = data
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=8)
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--collect", metavar="BENCHMARK", help="time `collect` instead")
    parser.add_argument("--limit", type=int, default=8, help="--collect: items")
    args = parser.parse_args()
    import torch

    from reportgen.models import cache_dir, fetch_embedded
    from reportgen.runner.local import cpu_cores

    torch.set_num_threads(cpu_cores())  # one in-process worker gets every core

    fetch_embedded("smollm2-135m-instruct")
    models = (cache_dir() / "models").resolve()
    if args.collect:
        main_collect(args, models)
        return
    chosen = short_cases(args.cases)
    print(f"{len(chosen)} cases: {', '.join(p.stem for p in chosen)}; {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(prefix="bench-parallel-") as tmp:
        work = Path(tmp)
        cases = work / "cases"
        cases.mkdir()
        for path in chosen:
            shutil.copy(path, cases / path.name)
        timings: dict[str, float] = {}
        sites: dict[str, Path] = {}
        for name in args.configs:
            seconds, ray_start, sites[name] = run_config(name, cases, work, models)
            timings[name] = seconds
            extra = f" (+ {ray_start:.1f} s ray.init)" if ray_start else ""
            print(
                f"{name:>7}: {seconds:7.1f} s  {60 * len(chosen) / seconds:6.2f} cases/min{extra}",
                flush=True,
            )
        first = args.configs[0]
        for name in args.configs[1:]:
            same = data_files(sites[name]) == data_files(sites[first])
            print(f"data.json {name} vs {first}: {'identical' if same else 'DIFFERENT'}")
    if "local1" in timings and "local2" in timings:
        print(f"speed-up local2 / local1: {timings['local1'] / timings['local2']:.2f}x")
    if "local2" in timings and "ray2" in timings:
        print(f"ray2 / local2 cases per minute: {timings['local2'] / timings['ray2']:.2f}")


if __name__ == "__main__":
    sys.exit(main())
