"""`reportgen build`: every case -> cached CaseResult -> dossier + PDF -> the static site.

The site is written to a staging folder beside the output and swapped in at the end, so an
interrupted or failed build leaves the previous site intact."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .cases import Case, load_cases
from .errors import ReportgenError
from .models import LoadedModel, load_model  # noqa: F401 - load_model: the default loader
from .project import Project, find_project_file, load_project
from .results import CaseResult
from .runner import DEFAULT_OPTIONS, LOCAL, Execution, RuntimeOptions, run_cases


@dataclass
class BuildReport:
    out: Path
    built: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)


def compute_results(
    cases: list[Case],
    *,
    use_cache: bool,
    keep_going: bool,
    command: str,
    report: BuildReport,
    on_done: Callable[[Case], None] = lambda case: None,
    model_loader: Callable[..., LoadedModel] | None = None,
    options: RuntimeOptions = DEFAULT_OPTIONS,
    project: Project | None = None,
    execution: Execution = LOCAL,
    on_progress: Callable[[Case, tuple[object, ...]], None] = lambda case, args: None,
) -> list[CaseResult]:
    """Results for ``cases`` in order, from the cache or computed by the runner (in this
    process, N local workers or Ray; models load lazily, once per worker, only on a miss)."""
    run = run_cases(
        cases,
        command=command,
        use_cache=use_cache,
        keep_going=keep_going,
        options=options,
        project=project,
        execution=execution,
        on_done=on_done,
        on_progress=on_progress,
        loader=model_loader,
    )
    report.built.extend(run.built)
    report.cached.extend(run.cached)
    report.failures.extend(run.failures)
    return run.results


def load_summaries(paths: Iterable[str | Path]) -> list[dict[str, object]]:
    """`reportgen collect` writes OUT/<benchmark>/summary.json; the index shows their outcomes.
    Lists (e.g. the unpinned failures with reasons) are counted."""
    import json

    summaries = []
    for root in map(Path, paths):
        for path in sorted(root.rglob("summary.json")) if root.is_dir() else []:
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                continue
            if not isinstance(data, dict):
                continue
            data.setdefault("benchmark", path.parent.name)
            for key in ("items", "passed", "failed", "pinned", "unpinned"):
                if isinstance(data.get(key), list | dict):
                    data[key] = len(data[key])
            summaries.append(data)
    return summaries


def render_site(
    results: list[CaseResult],
    out: Path,
    failures: list[tuple[str, str]],
    *,
    pdf: bool,
    single_file: bool,
    summaries: Iterable[dict[str, object]] = (),
    on_case: Callable[[CaseResult], None] = lambda r: None,
) -> list[tuple[str, str]]:
    """Render into a staging folder and swap it in; returns PDF failures (the page still ships)."""
    from .render.latex import render_latex
    from .site import build_site

    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.staging-", dir=out.parent))
    pdf_failures: list[tuple[str, str]] = []
    try:
        if pdf:
            for result in results:
                on_case(result)
                try:
                    figures = _cached_figures(result, render_latex)
                    shutil.copytree(figures, staging / "cases" / result.case_id / "figures")
                except Exception as exc:  # a figure set that fails must not sink the site
                    pdf_failures.append((result.case_file, f"PDF figure set: {exc}"))
        build_site(
            results,
            staging,
            failures=[*failures, *pdf_failures],
            summaries=list(summaries),
            single_file=single_file,
        )
        previous = out.with_name(f".{out.name}.previous")
        if previous.exists():
            shutil.rmtree(previous)
        if out.exists():
            out.rename(previous)
        staging.rename(out)
        if previous.exists():
            shutil.rmtree(previous)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return pdf_failures


def _cached_figures(result: CaseResult, render_latex: Callable[..., object]) -> Path:
    """The compiled figure set of ``result``, from the cache when the result and the LaTeX code
    are unchanged (pdflatex is the slowest part of a rebuild)."""
    import hashlib

    from .models import cache_dir
    from .render import latex

    digest = hashlib.sha256(result.dumps().encode())
    digest.update(Path(latex.__file__).read_bytes())
    folder = cache_dir() / "figures" / digest.hexdigest()[:24]
    if not (folder / f"{result.case_id}.pdf").exists():
        partial = folder.with_name(folder.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        render_latex(result, partial)
        shutil.rmtree(folder, ignore_errors=True)
        partial.rename(folder)
    return folder


def build(
    paths: Iterable[str | Path],
    out: Path,
    *,
    use_cache: bool = True,
    keep_going: bool = False,
    pdf: bool = True,
    single_file: bool = False,
    command: str = "reportgen build",
    progress: bool = True,
    options: RuntimeOptions = DEFAULT_OPTIONS,
    execution: Execution = LOCAL,
    project: Project | None = None,
) -> BuildReport:
    """``project``: the ``reportgen.toml`` settings (default: found beside the cases)."""
    from tqdm import tqdm

    paths = list(paths)
    report = BuildReport(out=out)
    cases, errors = load_cases(paths)
    if errors:
        if not keep_going:
            raise errors[0]
        report.failures.extend((e.path, str(e)) for e in errors)
    if not cases and not report.failures:
        raise ReportgenError("no case files found")
    if project is None:
        project = load_project(find_project_file([Path(p) for p in paths]))
    with tqdm(total=len(cases), desc="computing", unit="case", disable=not progress) as bar:
        results = compute_results(
            cases,
            use_cache=use_cache,
            keep_going=keep_going,
            command=command,
            report=report,
            on_done=lambda case: bar.update(1),
            options=options,
            project=project,
            execution=execution,
            on_progress=lambda case, args: bar.set_postfix_str(f"{case.id}: {args[0]}"),
        )
    with tqdm(total=len(results), desc="rendering", unit="case", disable=not progress) as bar:
        pdf_failures = render_site(
            results,
            out,
            report.failures,
            pdf=pdf,
            single_file=single_file,
            on_case=lambda r: bar.update(1),
        )
    report.failures.extend(pdf_failures)
    return report
