"""Faithfulness before and after the speed-up, side by side, on real cases.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_faithfulness.py CASE.toml ... [--ref REF]

The "before" implementation is reportgen/faithfulness.py at git REF (default: the commit
before the speed-up, 8b40e16), loaded from `git show`; both run on the same model, input and
attribution, interleaved. Prints seconds for each, their ratio, and whether curves, AOPC and
flip-k agree (max |difference| of the curves)."""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from reportgen import faithfulness as fast
from reportgen.cases import load_case
from reportgen.models import load_model
from reportgen.pipeline import attribute_prepared, prepare_question


def load_reference(ref: str):
    root = Path(__file__).resolve().parent.parent
    source = subprocess.run(
        ["git", "-C", str(root), "show", f"{ref}:reportgen/faithfulness.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    source = source.replace("from .attribution", "from reportgen.attribution")
    source = source.replace("from .objectives", "from reportgen.objectives")
    path = Path(tempfile.mkdtemp()) / "faithfulness_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("faithfulness_before", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("cases", nargs="+")
    parser.add_argument("--ref", default="8b40e16")
    args = parser.parse_args()
    before = load_reference(args.ref)
    models = {}
    print(f"{'case':40} {'tokens':>6} {'before s':>9} {'after s':>8} {'ratio':>6}  agree")
    for path in args.cases:
        case = load_case(path)
        if case.model not in models:
            models[case.model] = load_model(case.model)
        loaded = models[case.model]
        question = prepare_question(loaded, case.question)
        attribution = attribute_prepared(loaded, question)
        call = (
            loaded,
            attribution.token_ids,
            question.objective,
            attribution.relevance,
            attribution.special,
        )
        start = time.perf_counter()
        old = before.faithfulness(*call, budget=50, insertion=False)
        t_old = time.perf_counter() - start
        start = time.perf_counter()
        new = fast.faithfulness(*call, budget=50, insertion=False)
        t_new = time.perf_counter() - start
        diff = max(
            abs(a - b)
            for name in old["curves"]
            for a, b in zip(old["curves"][name], new["curves"][name], strict=True)
        )
        same_flip = old["flip_k"] == new["flip_k"]
        aopc = max(abs(old["aopc"][k] - new["aopc"][k]) for k in old["aopc"] if old["aopc"][k])
        print(
            f"{case.id:40} {len(attribution.token_ids):6d} {t_old:9.2f} {t_new:8.2f} "
            f"{t_old / t_new:6.2f}  flip-k equal: {same_flip}, max curve diff {diff:.2e}, "
            f"max AOPC diff {aopc:.2e}",
            flush=True,
        )


if __name__ == "__main__":
    sys.exit(main())
