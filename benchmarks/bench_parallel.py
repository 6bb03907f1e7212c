"""Cases per minute of `reportgen build` with 1 and 2 local workers and with Ray on 2 CPUs.

    flock /tmp/reportgen-heavy.lock nice -n 10 .venv/bin/python benchmarks/bench_parallel.py \
        [--cases 8] [--configs local1 local2 ray2]

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


def data_files(site: Path) -> dict[str, bytes]:
    return {p.parent.name: p.read_bytes() for p in sorted(site.glob("cases/*/data.json"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=8)
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    args = parser.parse_args()
    import torch

    from reportgen.models import cache_dir, fetch_embedded
    from reportgen.runner.local import cpu_cores

    torch.set_num_threads(cpu_cores())  # one in-process worker gets every core

    fetch_embedded("smollm2-135m-instruct")
    models = (cache_dir() / "models").resolve()
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
