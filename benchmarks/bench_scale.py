"""Cost at the users' scale: seconds and peak memory per stage of one cold dossier, for each
model size and input length, in one run.

    .venv/bin/python benchmarks/bench_scale.py                       # the whole table
    .venv/bin/python benchmarks/bench_scale.py --models 0.5b --tokens 300 --no-pdf
    .venv/bin/python benchmarks/bench_scale.py --json scale.json     # also keep the rows

Default grid: SmolLM2-135M, Qwen2.5-Coder 0.5B and 1.5B x ~300 and ~2,000 tokens, and the 1.5B
at ~4,000 tokens (7 dossiers; hours on a 2-core machine: run it alone). ``--models`` and
``--tokens`` pick a subset (``--tokens 4000`` runs 4k on every chosen model).

Each dossier is a synthetic long-input case written for the model: the start of Python's
``argparse.py`` cut to the token count, asked which ArgumentParser method parses the command
line (target " parse", contrast " add": the first token of each in the model's tokenizer).
It runs through benchmarks/bench_build.py's child (its own process, a fresh empty
REPORTGEN_CACHE with only the model files linked in and the models' remembered sha256: cold, as
for a new case on a machine that has the model), whose stages
are:

    load        model load from the cached fp32 safetensors
    attribution AttnLRP input relevance (read from the graph's trace: the pass is in graph)
    graph       the attribution graph (less pruning/metrics, reported as ``metrics``)
    metrics     pruning, graph metrics, neuron details
    ablate      interventions: the graph's strongest nodes ablated inside the model
    continue    greedy continuations after the target and the contrast
    faithful    flip test and deletion curves (within the model's compute budget)
    html        dossier page, charts, data files
    pdf         LaTeX figure set (vl-convert + pdflatex)

Peak memory is sampled every 20 ms per stage (resident set of the process: model weights
included); ``peak`` is the process's maximum. Dossiers run one after another, never together.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from reportgen.cases import Case, case_toml  # noqa: E402
from reportgen.question import PromptSpec, Question  # noqa: E402

MODELS = {
    "135m": "smollm2-135m-instruct",
    "0.5b": "qwen2.5-coder-0.5b-instruct",
    "1.5b": "qwen2.5-coder-1.5b-instruct",
}
DEFAULT_GRID = [
    ("135m", 300),
    ("135m", 2000),
    ("0.5b", 300),
    ("0.5b", 2000),
    ("1.5b", 300),
    ("1.5b", 2000),
    ("1.5b", 4000),
]
STAGES = (
    "load",
    "attribution",
    "graph",
    "metrics",
    "ablate",
    "continue",
    "faithful",
    "html",
    "pdf",
)
QUESTION = (
    "Which method of ArgumentParser parses the command line arguments? Answer with the "
    "method's name only."
)
PREFIX = "The method is"


def source_text() -> str:
    """The start of the standard library's argparse.py (about 25k tokens: enough for 4k)."""
    return Path(sysconfig.get_paths()["stdlib"], "argparse.py").read_text(encoding="utf-8")


def make_case(model: str, tokens: int, folder: Path) -> Path:
    """A case of about ``tokens`` tokens (chat template, question and prefix included)."""
    from transformers import AutoTokenizer

    from reportgen.inputs import prepare_input
    from reportgen.models import embedded_path, fetch_embedded

    fetch_embedded(model)
    tokenizer = AutoTokenizer.from_pretrained(embedded_path(model))

    def prompt(code: str) -> str:
        return f"Here is a Python module.\n\n```python\n{code}\n```\n\n{QUESTION}"

    def count(code: str) -> int:
        spec = PromptSpec(prompt(code), chat=True, prefix=PREFIX)
        return len(prepare_input(tokenizer, spec).token_ids)

    ids = tokenizer(source_text(), add_special_tokens=False)["input_ids"]
    keep = max(1, tokens - count(""))
    code = tokenizer.decode(ids[:keep])
    while count(code) > tokens and keep > 1:  # decode/encode may not round-trip exactly
        keep -= max(1, (count(code) - tokens) // 2)
        code = tokenizer.decode(ids[:keep])
    target = tokenizer(" parse", add_special_tokens=False)["input_ids"][0]
    contrast = tokenizer(" add", add_special_tokens=False)["input_ids"][0]
    path = folder / f"scale-{model}-{tokens}.toml"
    case = Case(
        path=str(path),
        id=f"scale-{model.replace('.', '-')}-{tokens}",
        title=f"Scale benchmark: {model}, about {tokens} tokens",
        model=model,
        question=Question(PromptSpec(prompt(code), chat=True, prefix=PREFIX), target, contrast),
    )
    path.write_text(case_toml(case))
    return path


def run_one(model: str, tokens: int, pdf: bool) -> dict:
    models = Path(os.environ.get("REPORTGEN_CACHE", Path.home() / ".cache/reportgen")) / "models"
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        case = make_case(model, tokens, Path(tmp))
        cache = Path(tmp) / "cache"
        cache.mkdir()
        (cache / "models").symlink_to(models.resolve())
        # the model's sha256, remembered by path: hashing a 7 GB model is once per machine,
        # not part of a dossier
        hashes = models.parent / "content-hashes.json"
        if hashes.is_file():
            shutil.copy(hashes, cache / hashes.name)
        env = dict(os.environ, REPORTGEN_CACHE=str(cache), PYTHONPATH=str(HERE.parent))
        command = [sys.executable, str(HERE / "bench_build.py"), str(case), "--child", tmp]
        command += [] if pdf else ["--no-pdf"]
        start = time.perf_counter()
        proc = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - start
    lines = [line for line in proc.stdout.splitlines() if line.startswith("BENCH ")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"model": model, "asked": tokens, "error": tail}
    row = json.loads(lines[-1][6:])
    return {"model": model, "asked": tokens, "wall_s": wall, **row}


def format_row(row: dict) -> str:
    label = f"{row['model'][:28]:28}"
    if "error" in row:
        return f"{label} {row['asked']:>6} failed: {row['error']}"
    stages, peaks = row["stages"], row["stage_peak_gb"]
    cells = " ".join(f"{stages.get(s, 0.0):7.1f}s/{peaks.get(s, 0.0):4.1f}" for s in STAGES)
    return f"{label} {row['tokens']:>6} {cells} {row['wall_s']:8.1f} {row['peak_gb']:6.2f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), help="default: all")
    parser.add_argument("--tokens", nargs="+", type=int, help="default: 300 2000 (+4000 at 1.5B)")
    parser.add_argument("--no-pdf", action="store_true", help="leave out the LaTeX figure set")
    parser.add_argument("--json", type=Path, help="also write the rows to this file")
    args = parser.parse_args()
    grid = [
        (size, tokens)
        for size, tokens in DEFAULT_GRID
        if (args.models is None or size in args.models) and args.tokens is None
    ]
    if args.tokens is not None:
        chosen = args.models or list(MODELS)
        grid = [(size, tokens) for size in chosen for tokens in args.tokens]
    header = f"{'model':28} {'tokens':>6} " + " ".join(f"{s + ' s/GB':>12}" for s in STAGES)
    print(header + f" {'wall s':>8} {'peak':>6}", flush=True)
    rows = []
    for size, tokens in grid:
        row = run_one(MODELS[size], tokens, pdf=not args.no_pdf)
        rows.append(row)
        print(format_row(row), flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 1 if any("error" in row for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
