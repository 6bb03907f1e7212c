"""GPU agreement and capacity check, one call, one table (under 8 minutes on one GPU).

    .venv/bin/python benchmarks/gpu_check.py [--device cuda] [--long 10000] [--build-cases 5]
    .venv/bin/python benchmarks/gpu_check.py --device cpu --short --long 64 --build-cases 1 \
        --skip long-dossier   # dry

On the embedded SmolLM2-135M and a shipped case it prints:
  * attribution and the closed-form graph on DEVICE vs the CPU, float32 (cosine of the input
    relevance / of the edge weights, max relative error = max |a - b| / max |b|);
  * bfloat16 vs float32 on DEVICE (the same figures);
  * 4-bit NF4 (bitsandbytes) vs float32 on DEVICE (attribution);
  * a --long-token closed-form graph on DEVICE (pruning while streaming, p = 0.85): seconds,
    peak GPU memory, edges kept;
  * `build --device DEVICE` of --build-cases shipped cases (fresh private cache): seconds;
  * the whole dossier of the longest shipped case (--long-case, 8,064 tokens: attribution, exact
    pruned graph, metrics, faithfulness, HTML and the PDF figure set) on DEVICE, cold: seconds
    (issue 16's GPU line: a 10k-token dossier in <= 60 s).
A line whose requirement is missing (CUDA, bitsandbytes) is skipped with its reason; a line that
fails prints its error and the others still run. With --device cpu every line runs on the CPU
(DEVICE vs CPU is then CPU vs CPU): a dry check that the script works."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
MODEL = "smollm2-135m-instruct"
CASE = ROOT / "cases" / "primary-colors-yellow.toml"
TEXT = "The quick brown fox jumps over the lazy dog while the model counts tokens. "
ROWS: list[tuple[str, str, str]] = []


def closed_form_graph(*args, **kwargs):
    """The closed-form graph, wherever the graph package keeps it."""
    for name in ("reportgen.closed_form", "reportgen.graph.closed_form"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if hasattr(module, "closed_form_graph"):
            return module.closed_form_graph(*args, **kwargs)
    raise ImportError("no closed_form_graph in reportgen.closed_form or reportgen.graph")


def row(check: str, result: str, seconds: str = "") -> None:
    ROWS.append((check, result, seconds))
    print(f"  {check}: {result} {seconds}", file=sys.stderr, flush=True)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-300))


def max_rel(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    return float(np.abs(a - b).max() / (np.abs(b).max() + 1e-300))


def edge_vectors(g1, g2) -> tuple[np.ndarray, np.ndarray]:
    """The edge weights of two graphs on the union of their edges (0 where one lacks it)."""

    def keyed(g):
        n = 1 << 20
        key = (
            (g.edge_source_layer.astype(np.int64) * 1024 + g.edge_target_layer) * n + g.edge_target
        ) * n + g.edge_source
        return dict(zip(key.tolist(), g.edge_weight.astype(np.float64).tolist(), strict=True))

    k1, k2 = keyed(g1), keyed(g2)
    keys = sorted(k1.keys() | k2.keys())
    return np.array([k1.get(k, 0.0) for k in keys]), np.array([k2.get(k, 0.0) for k in keys])


def guarded(check: str):
    def wrap(func):
        def run(*args, **kwargs):
            try:
                return func(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - one failing line must not hide the others
                traceback.print_exc(file=sys.stderr)
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                row(check, f"FAILED {type(exc).__name__}: {first[:120]}")
                return None

        return run

    return wrap


class Models:
    """Loaded models by (device, dtype, quantisation), freed when no longer needed."""

    def __init__(self) -> None:
        self.cache: dict[tuple, object] = {}

    def get(self, device: str, dtype: str = "float32", quantize: str | None = None):
        from reportgen.models import load_model

        key = (device, dtype, quantize)
        if key not in self.cache:
            self.cache[key] = load_model(MODEL, device=device, dtype=dtype, quantize=quantize)
        return self.cache[key]

    def drop(self) -> None:
        import torch

        self.cache.clear()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def case_question(short: bool):
    """The shipped case's question, or (``--short``, for the dry check on a CPU) a 6-token one."""
    from reportgen.cases import load_case
    from reportgen.question import PromptSpec, Question

    if short:
        return Question(PromptSpec("The capital of France is"), " Paris", " Lyon")
    return Question.from_case(load_case(CASE))


def attribution_of(loaded, question):
    from reportgen.pipeline import attribute_prepared, prepare_question

    prepared = prepare_question(loaded, question)
    return prepared, attribute_prepared(loaded, prepared)


def graph_of(loaded, prepared):
    return closed_form_graph(
        loaded.model, loaded.tokenizer, list(prepared.inputs.token_ids), prepared.objective
    )


def compare(label: str, models: Models, question, a: tuple, b: tuple, graph: bool) -> None:
    """Attribution (and the closed-form graph) of model settings ``a`` vs reference ``b``."""

    @guarded(f"attribution {label}")
    def attribution():
        start = time.perf_counter()
        pa, ra = attribution_of(models.get(*a), question)
        pb, rb = attribution_of(models.get(*b), question)
        row(
            f"attribution {label}",
            f"cosine {cosine(ra.relevance, rb.relevance):.6f}, max rel err "
            f"{max_rel(ra.relevance, rb.relevance):.2e}, explained {ra.explained:.4f} vs "
            f"{rb.explained:.4f}",
            f"{time.perf_counter() - start:.1f} s",
        )
        return pa, pb

    prepared = attribution()
    if not graph or prepared is None:
        return

    @guarded(f"closed-form graph {label}")
    def closed():
        start = time.perf_counter()
        ga = graph_of(models.get(*a), prepared[0])
        gb = graph_of(models.get(*b), prepared[1])
        wa, wb = edge_vectors(ga, gb)
        row(
            f"closed-form graph {label}",
            f"edges cosine {cosine(wa, wb):.6f}, max rel edge err {max_rel(wa, wb):.2e}, "
            f"node relevance cosine {cosine(ga.node_relevance, gb.node_relevance):.6f} "
            f"({ga.n_edges} vs {gb.n_edges} edges)",
            f"{time.perf_counter() - start:.1f} s",
        )

    closed()


@guarded("long closed-form graph")
def long_graph(models: Models, device: str, tokens: int) -> None:
    import torch

    from reportgen.objectives import Objective

    loaded = models.get(device)
    ids = loaded.tokenizer.encode(TEXT * (tokens // 8 + 2))[:tokens]
    objective = Objective("logit_diff", target_id=7042, strategy="by_ref_token", contrast_id=38034)
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    graph = closed_form_graph(loaded.model, loaded.tokenizer, ids, objective, cumulative_mass=0.85)
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    peak = f"peak GPU {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB" if cuda else "CPU run"
    row(
        f"closed-form graph {len(ids)} tokens on {device} (p=0.85)",
        f"{peak}, {graph.n_edges} edges kept, column-sum error "
        f"{graph.meta.get('column_sum_error', float('nan')):.1e}",
        f"{seconds:.1f} s",
    )


def shortest_cases(count: int) -> list[Path]:
    """The ``count`` shipped top-level cases with the shortest prompt + prefix."""
    import tomllib

    sized = []
    for path in sorted((ROOT / "cases").glob("*.toml")):
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        sized.append((len(data.get("prompt", "")) + len(data.get("prefix", "")), path.name, path))
    return [path for _, _, path in sorted(sized)[:count]]


@guarded("build")
def build_cases(device: str, count: int) -> None:
    shipped = shortest_cases(count)
    seconds, report = cold_build(device, shipped, pdf=False)
    failed = "; ".join(f"{Path(p).name}: {r[:60]}" for p, r in report.failures)
    row(
        f"build --device {device} of {len(shipped)} shipped cases",
        f"{len(report.built)} built, {len(report.failures)} failed"
        + (f" ({failed})" if failed else "")
        + f", {60 * len(report.built) / seconds:.2f} cases/min",
        f"{seconds:.1f} s",
    )


@guarded("long dossier")
def long_dossier(device: str, case: Path) -> None:
    import torch

    cuda = device.startswith("cuda")
    pdf = shutil.which("pdflatex") is not None
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    seconds, report = cold_build(device, [case], pdf=pdf)
    peak = (
        f"peak GPU {torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB" if cuda else "CPU run"
    )
    failed = "; ".join(r[:80] for _, r in report.failures)
    figures = "PDF included" if pdf else "no pdflatex: PDF left out"
    row(
        f"whole dossier of {case.name} on {device} ({figures})",
        f"{len(report.built)} built" + (f", FAILED: {failed}" if failed else "") + f", {peak}; "
        "issue 16's target: a 10k-token dossier in <= 60 s",
        f"{seconds:.1f} s",
    )


def cold_build(device: str, shipped: list[Path], pdf: bool) -> tuple[float, Any]:
    """`reportgen build --device DEVICE` of ``shipped`` into a fresh private cache."""
    from reportgen.build import build
    from reportgen.models import cache_dir
    from reportgen.runner import RuntimeOptions

    models = (cache_dir() / "models").resolve()
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        work = Path(tmp)
        (work / "cache").mkdir()
        (work / "cache" / "models").symlink_to(models)
        (work / "cases").mkdir()
        for path in shipped:
            shutil.copy(path, work / "cases" / path.name)
        previous = os.environ.get("REPORTGEN_CACHE")
        os.environ["REPORTGEN_CACHE"] = str(work / "cache")
        try:
            start = time.perf_counter()
            report = build(
                [work / "cases"],
                work / "site",
                pdf=pdf,
                progress=False,
                keep_going=True,
                options=RuntimeOptions(device=device),
                command=f"reportgen build --device {device}",
            )
            seconds = time.perf_counter() - start
        finally:
            if previous is None:
                os.environ.pop("REPORTGEN_CACHE", None)
            else:
                os.environ["REPORTGEN_CACHE"] = previous
    return seconds, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu (dry check)")
    parser.add_argument("--long", type=int, default=10_000, help="tokens of the long graph")
    parser.add_argument("--build-cases", type=int, default=5)
    parser.add_argument(
        "--long-case",
        type=Path,
        default=ROOT / "benchmarks" / "cases" / "ntpath-basename-recency-8k.toml",
        help="the case of the whole-dossier line",
    )
    parser.add_argument(
        "--short", action="store_true", help="a 6-token prompt for the agreement lines (dry check)"
    )
    parser.add_argument(
        "--skip",
        nargs="+",
        default=[],
        choices=["agreement", "long", "build", "long-dossier"],
        help="lines to skip",
    )
    args = parser.parse_args()
    # a timeout's SIGTERM still prints the table of what finished
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    started = time.perf_counter()
    try:
        run_checks(args)
    except KeyboardInterrupt:
        row("(interrupted)", "the lines above finished; the rest did not run")
    finally:
        print_table(args.device, time.perf_counter() - started)


def run_checks(args: argparse.Namespace) -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch
    import transformers

    transformers.utils.logging.set_verbosity_error()
    from reportgen.models import fetch_embedded

    fetch_embedded(MODEL)
    device = args.device
    has_cuda = torch.cuda.is_available()
    if device.startswith("cuda") and not has_cuda:
        reason = "CUDA is not available (torch " + torch.__version__ + ")"
        for check in ("attribution / graph CUDA vs CPU", "bfloat16 vs float32", "4-bit NF4"):
            row(check, f"skipped: {reason}")
        row(f"closed-form graph {args.long} tokens", f"skipped: {reason}")
        row("build --device cuda", f"skipped: {reason}")
        row(f"whole dossier of {args.long_case.name}", f"skipped: {reason}")
        return
    if "agreement" not in args.skip:
        agreement(args, device)
    models = Models()
    if "long" not in args.skip:
        long_graph(models, device, args.long)
        models.drop()
    if "build" not in args.skip:
        build_cases(device, args.build_cases)
    if "long-dossier" not in args.skip:
        long_dossier(device, args.long_case)


def agreement(args: argparse.Namespace, device: str) -> None:
    question = case_question(args.short)
    models = Models()
    compare(f"float32 {device} vs cpu", models, question, (device,), ("cpu",), graph=True)
    compare(
        f"bfloat16 vs float32 on {device}",
        models,
        question,
        (device, "bfloat16"),
        (device,),
        graph=True,
    )
    if not device.startswith("cuda"):
        row("attribution 4-bit NF4 vs float32", "skipped: 4-bit needs CUDA")
    elif importlib.util.find_spec("bitsandbytes") is None:
        row("attribution 4-bit NF4 vs float32", "skipped: bitsandbytes is not installed")
    else:
        compare(
            f"4-bit NF4 vs float32 on {device}",
            models,
            question,
            (device, "float32", "4bit"),
            (device,),
            graph=False,
        )
    models.drop()


def print_table(device: str, total: float | None = None) -> None:
    import torch

    name = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA device"
    print(f"gpu_check on {device} ({name}), torch {torch.__version__}, model {MODEL}")
    width = max([len(c) for c, _, _ in ROWS] or [5])
    print(f"{'check':<{width}}  {'seconds':>8}  result")
    for check, result, seconds in ROWS:
        print(f"{check:<{width}}  {seconds:>8}  {result}")
    if total is not None:
        print(f"total {total:.0f} s")


if __name__ == "__main__":
    main()
