"""The result types: importable without torch, and one JSON codec that gives back what it got."""

from __future__ import annotations

import json
import subprocess
import sys

from render_fixtures import make_result, sample_result

from reportgen.results import CaseResult


def test_rendering_imports_no_torch():
    """Rendering sees only plain results: importing every renderer and the result types loads
    neither torch nor lxt nor the model loader, so a cached result renders without them."""
    script = (
        "import pkgutil, sys\n"
        "import reportgen.render, reportgen.results\n"
        "for m in pkgutil.iter_modules(reportgen.render.__path__):\n"
        "    __import__('reportgen.render.' + m.name)\n"
        "print(sorted(m for m in ('torch', 'lxt', 'transformers', 'reportgen.models',\n"
        "    'reportgen.attribution') if m in sys.modules), len(sys.modules) > 100)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "[] True\n"


def test_json_codec_round_trip():
    """``from_json(to_json(r))`` writes the same JSON as ``r``: every field survives, typed."""
    for result in (make_result(), sample_result()):
        text = result.dumps()
        again = CaseResult.from_json(json.loads(text))
        assert again.dumps() == text
        assert again.attribution.target == result.attribution.target
        assert again.attribution.relevance_sum == result.attribution.relevance_sum
