"""`reportgen build`: every case -> cached CaseResult -> dossier + PDF -> the static site.

The site is written to a staging folder beside the output and swapped in at the end, so an
interrupted or failed build leaves the previous site intact. What ``--out`` may be, the lock
against a second build and the cleaning of a killed build's leftovers live in
:mod:`reportgen.outdir`."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from . import cache_files, outdir
from .cases import Case, load_cases
from .errors import ReportgenError, warn
from .models import LoadedModel
from .progress import case_steps
from .project import FigureSettings, Project, find_project_file, load_project
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
    on_step: Callable[[str, str, int, int], None] = lambda case_id, step, done, total: None,
    fast: bool = False,
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
        on_progress=lambda case, args: (on_progress(case, args), on_step(case.id, *args)),
        loader=model_loader,
        fast=fast,
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
    use_cache: bool = True,
    inputs: Iterable[str | Path] = (),
    keep_going: bool = False,
    project: Project | None = None,
    case_ids: set[str] | None = None,
    standalone: bool = False,
) -> list[tuple[str, str]]:
    """Render into a staging folder and swap it in; returns PDF failures (the page still ships)
    and, with ``keep_going``, the cases whose page could not be rendered (left out).

    ``out`` is checked by :func:`outdir.check_out_folder` (again: it may have changed while the
    cases were computed); the caller holds :func:`outdir.build_lock`."""
    from .published import log_local_facts, published_result
    from .render import latex
    from .render.dossier import Dossier, dossier
    from .render.paper import render_paper_figures
    from .render.site import build_site
    from .render.study import study_data

    settings = project.figures if project is not None else FigureSettings()
    # a case's cells and charts, drawn once for its figure set and its page
    page_parts: dict[str, Dossier] = {}

    def render_figures(result: CaseResult, folder: Path) -> None:
        """The case's figure set (one Letter-size PDF) and its paper figures (a PDF per
        figure and width, figures.tex, figures.zip), each compiled in one pdflatex run."""
        if result.case_id not in page_parts:
            page_parts[result.case_id] = dossier(result)
        parts = page_parts[result.case_id]
        latex.render_latex(result, folder, page_parts=parts)
        render_paper_figures(result, folder, settings, cells=parts.cells)

    summaries = list(summaries)
    out = outdir.check_out_folder(out, inputs)
    log_local_facts(results, out)
    results = [published_result(r) for r in results]  # no local path in a published file
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=outdir.staging_prefix(out), dir=out.parent))
    pdf_failures: list[tuple[str, str]] = []
    try:
        outdir.write_marker(staging, staging=True)
        if pdf:
            for result in results:
                on_case(result)
                try:
                    figures = _cached_figures(
                        result, render_figures, use_cache=use_cache, settings=settings
                    )
                    try:
                        shutil.copytree(figures, staging / "cases" / result.case_id / "figures")
                    finally:
                        if _scratch(figures):  # rendered outside an unwritable cache
                            shutil.rmtree(figures, ignore_errors=True)
                    (staging / "cases" / result.case_id / "figures" / _FIGURES_MANIFEST).unlink(
                        missing_ok=True
                    )
                except Exception as exc:  # a figure set that fails must not sink the site
                    pdf_failures.append((result.case_file, f"PDF figure set: {exc}"))
            try:  # the study figures of the project page (site-level figures.tex)
                study = _cached_study_figures(
                    study_data(results, list(summaries)), settings, use_cache=use_cache
                )
                if study is not None:
                    try:
                        shutil.copytree(study, staging / "figures")
                    finally:
                        if _scratch(study):
                            shutil.rmtree(study, ignore_errors=True)
                    (staging / "figures" / _FIGURES_MANIFEST).unlink(missing_ok=True)
            except Exception as exc:
                pdf_failures.append(("study figures", f"paper figures: {exc}"))
        page_failures: list[tuple[str, str]] = []

        def page_failed(result: CaseResult, exc: Exception) -> str:
            reason = f"page: {type(exc).__name__}: {str(exc).strip()[:200]}"
            page_failures.append((result.case_file, reason))
            return reason

        build_site(
            results,
            staging,
            failures=[*failures, *pdf_failures],
            summaries=list(summaries),
            single_file=single_file,
            on_error=page_failed if keep_going else None,
            site_info=project.site if project is not None else None,
            project_file=project.path if project is not None else None,
            case_ids=case_ids,
            standalone=standalone,
            page_parts=page_parts,
        )
        pdf_failures.extend(page_failures)
        outdir.write_marker(staging)
        outdir.make_world_readable(staging)
        _swap_in(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return pdf_failures


def _swap_in(staging: Path, out: Path) -> None:
    """Replace ``out`` by ``staging`` with two renames; the old site is deleted only after the
    new one is in place."""
    previous = outdir.previous_path(out)
    if previous.exists():
        outdir.remove_site(previous)  # ours: clean_stale refused anything else
    if out.exists():
        out.rename(previous)
    staging.rename(out)
    if previous.exists():
        outdir.remove_site(previous)


_FIGURES_MANIFEST = ".reportgen-figures.json"


def _figures_intact(folder: Path, case_id: str, required: str | None = None) -> bool:
    """A cached figure set is used only when every file matches the checksums written with it
    (and it holds ``required``, by default the case's figure set ``<case_id>.pdf``)."""
    import hashlib
    import json

    try:
        listed = json.loads(cache_files.read_regular(folder / _FIGURES_MANIFEST))
        if not isinstance(listed, dict) or (required or f"{case_id}.pdf") not in listed:
            return False
        present = {p.name for p in folder.iterdir() if p.name != _FIGURES_MANIFEST}
        if present != set(listed):
            return False
        return all(
            hashlib.sha256(cache_files.read_regular(folder / name)).hexdigest() == digest
            for name, digest in listed.items()
        )
    except (OSError, ValueError, TypeError):
        return False


def _scratch(figures: Path) -> bool:
    """A figure set rendered outside the cache (which could not be written): the caller's to
    delete once copied."""
    return figures.name.startswith("reportgen-figures-") or ".partial-" in figures.name


def _cached_figures(
    result: CaseResult,
    render_latex: Callable[..., object],
    *,
    use_cache: bool = True,
    settings: FigureSettings | None = None,
) -> Path:
    """The compiled figure set of ``result``, from the cache when the result and the LaTeX code
    are unchanged (pdflatex is the slowest part of a rebuild). ``use_cache=False`` renders
    afresh; a damaged cached set is rendered again with a warning; a cache that cannot be
    written costs one warning and the set is rendered in a scratch folder (see
    :func:`_scratch`)."""
    import errno
    import hashlib
    import json

    from .cache_keys import render_version
    from .models import cache_dir

    digest = hashlib.sha256(result.dumps().encode())
    # every module that draws (charts, captions, TikZ, escaping, pdflatex) and the settings
    digest.update(render_version().encode())
    digest.update(repr(settings or FigureSettings()).encode())
    folder = cache_dir() / "figures" / digest.hexdigest()[:24]
    if use_cache and _figures_intact(folder, result.case_id):
        return folder
    if use_cache and (folder.exists() or folder.is_symlink()):
        warn(f"damaged figure cache entry {folder}; rendering the figures again")
    partial = folder.with_name(f"{folder.name}.partial-{os.getpid()}")
    if cache_files.writable():
        try:
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir(parents=True)
        except OSError as exc:
            cache_files.cannot_write(partial, exc)
    if cache_files.writable():
        try:
            render_latex(result, partial)
            sums = {
                p.name: hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(partial.iterdir())
                if p.is_file()
            }
            text = json.dumps(sums, indent=1)
            (partial / _FIGURES_MANIFEST).write_text(text, encoding="utf-8")
        except OSError as exc:
            shutil.rmtree(partial, ignore_errors=True)
            if exc.errno not in (
                errno.EROFS,
                errno.ENOSPC,
                errno.EACCES,
                errno.EPERM,
                errno.EDQUOT,
            ):
                raise
            cache_files.cannot_write(partial, exc)
        except BaseException:  # a failed or interrupted render leaves no half set behind
            shutil.rmtree(partial, ignore_errors=True)
            raise
    if not cache_files.writable():
        scratch = Path(tempfile.mkdtemp(prefix="reportgen-figures-"))
        try:
            render_latex(result, scratch)
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        return scratch
    try:
        if folder.is_symlink() or folder.is_file():
            folder.unlink()
        shutil.rmtree(folder, ignore_errors=True)
        partial.rename(folder)
    except OSError:  # another build stored the same set meanwhile, or the cache turned read-only
        if _figures_intact(folder, result.case_id):
            shutil.rmtree(partial, ignore_errors=True)
            return folder
        return partial
    return folder


def _cached_study_figures(
    data: object, settings: FigureSettings, *, use_cache: bool = True
) -> Path | None:
    """The study's paper figures (see :mod:`reportgen.render.study_paper`), cached like a case's by
    their numbers, the code and the settings; None when there is nothing to draw."""
    import hashlib
    import json

    from .cache_keys import render_version
    from .models import cache_dir
    from .render import paper, study, study_paper

    assert isinstance(data, study.StudyData)
    if not study_paper.study_figures(data, settings):
        return None
    digest = hashlib.sha256(json.dumps(data.to_json(), sort_keys=True).encode())
    digest.update(render_version().encode())  # every module that draws
    digest.update(repr(settings).encode())
    folder = cache_dir() / "figures" / f"study-{digest.hexdigest()[:24]}"
    if use_cache and _figures_intact(folder, "study", paper.FIGURES_TEX):
        return folder

    def scratch() -> Path:
        folder = Path(tempfile.mkdtemp(prefix="reportgen-figures-"))
        study_paper.render_study_figures(data, folder, settings)
        return folder

    if not cache_files.writable():
        return scratch()
    partial = folder.with_name(f"{folder.name}.partial-{os.getpid()}")
    try:
        shutil.rmtree(partial, ignore_errors=True)
        study_paper.render_study_figures(data, partial, settings)
        sums = {
            p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(partial.iterdir())
            if p.is_file()
        }
        (partial / _FIGURES_MANIFEST).write_text(json.dumps(sums, indent=1), encoding="utf-8")
        shutil.rmtree(folder, ignore_errors=True)
        partial.rename(folder)
    except OSError as exc:  # an unwritable cache: the figures all the same, from a scratch folder
        shutil.rmtree(partial, ignore_errors=True)
        if _figures_intact(folder, "study", paper.FIGURES_TEX):
            return folder
        cache_files.cannot_write(partial, exc)
        return scratch()
    return folder


def _featured_known(project: Project, case_ids: set[str]) -> Project:
    """``project`` without the featured ids that name no case of this build (a subset of the
    cases): one warning line, before any case is computed; they are left out."""
    import dataclasses

    from .site_links import featured_in_build

    assert project.site is not None
    site = featured_in_build(project.site, project.path, case_ids)
    return dataclasses.replace(project, site=site)


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
    fast: bool = False,
) -> BuildReport:
    """``project``: the ``reportgen.toml`` settings (default: found beside the cases).
    ``fast``: quick mode, no faithfulness test (:func:`reportgen.compute.compute_case`)."""
    from tqdm import tqdm

    paths = list(paths)
    report = BuildReport(out=out)
    resolved = outdir.check_out_folder(out, paths)  # refuse before any work
    with outdir.build_lock(resolved, command):
        outdir.clean_stale(resolved)
        cache_files.clean_temporaries()  # what builds killed mid-write left in the cache
        cases, errors = load_cases(paths)
        if errors:
            if not keep_going:
                raise errors[0]
            report.failures.extend((e.path, case_error_reason(e)) for e in errors)
        if not cases and not report.failures:
            raise ReportgenError("no case files found")
        # the project file (reportgen.toml beside cases/) is checked before any case is computed
        if project is None:
            project = load_project(find_project_file([Path(p) for p in paths]))
        warn_unused_model_settings(project, cases)
        case_ids = {case.id for case in cases} | {Path(e.path).stem for e in errors}
        if project.site is not None:
            project = _featured_known(project, case_ids)
        with tqdm(total=len(cases), desc="computing", unit="case", disable=not progress) as bar:
            results = compute_results(
                cases,
                use_cache=use_cache,
                keep_going=keep_going,
                command=command,
                report=report,
                on_done=lambda case: bar.update(1),
                on_step=case_steps(lambda text: bar.set_postfix_str(text, refresh=True)),
                options=options,
                project=project,
                execution=execution,
                fast=fast,
            )
        with tqdm(total=len(results), desc="rendering", unit="case", disable=not progress) as bar:
            pdf_failures = render_site(
                results,
                out,
                report.failures,
                pdf=pdf,
                single_file=single_file,
                summaries=load_summaries(paths),
                on_case=lambda r: (bar.update(1), bar.set_postfix_str(f"figures ({r.case_id})")),
                use_cache=use_cache,
                inputs=paths,
                keep_going=keep_going,
                project=project,
                case_ids=case_ids,
            )
    report.failures.extend(pdf_failures)
    return report


def warn_unused_model_settings(project: Project, cases: list[Case]) -> None:
    """One warning per ``[models."KEY"]`` of the project file that applies to no model of
    ``cases`` and names no known model (a misspelled name or path: its settings would
    silently not apply)."""
    models = {spec: case.path for case in cases for spec in (case.model, *case.compare)}
    for key in project.unused_model_keys(models):
        warn(
            f"{project.path}: [models.{key!r}] applies to no model of these cases and names "
            "no embedded model or existing path (paths are relative to this file); its "
            "settings are not used"
        )


def case_error_reason(error: ReportgenError) -> str:
    """A case-file error without its file name (the failure list shows the file already)."""
    problem, field_name = getattr(error, "problem", None), getattr(error, "field", None)
    if problem is None:
        return str(error)
    return f"field '{field_name}': {problem}" if field_name else problem
