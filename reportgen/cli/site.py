"""The site commands: `run` (one dossier), `build` (the site for many cases) and `validate`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from .common import (
    DEFAULT_SITE,
    command_line,
    execution_options,
    one_line_errors,
    quiet_libraries,
    runtime_options,
    status_line,
)


@click.command()
@click.argument("case_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    required=True,
    help="Folder for the dossier.",
)
@click.option(
    "--pdf/--no-pdf", default=True, show_default=True, help="Also compile the LaTeX figure set."
)
@click.option(
    "--single-file", is_flag=True, help="Inline the Vega bundle and data: one self-contained .html."
)
@click.option("--no-cache", is_flag=True, help="Recompute even if a cached result exists.")
@runtime_options
@one_line_errors
def run(
    case_file: Path, out: Path, pdf: bool, single_file: bool, no_cache: bool, runtime: Any
) -> None:
    """One dossier (HTML + data, PDF figure set) for CASE_FILE: a one-case site, rendered the way
    `build` renders (staging folder swapped in, cached figure sets)."""
    from ..cases import load_case
    from ..outdir import check_out_folder
    from ..project import find_project_file, load_project

    case = load_case(case_file)
    check_out_folder(out, [case_file])
    project = load_project(find_project_file([case_file]))
    quiet_libraries()
    from ..build import BuildReport, compute_results, render_site, warn_unused_model_settings

    warn_unused_model_settings(project, [case])
    from ..progress import case_steps

    report = BuildReport(out=out)
    (result,) = compute_results(
        [case],
        use_cache=not no_cache,
        keep_going=False,
        command=command_line(),
        report=report,
        on_step=case_steps(status_line),
        options=runtime,
        project=project,
    )
    status_line("")
    from ..outdir import build_lock

    with build_lock(out, command_line()):
        failures = render_site(
            [result],
            out,
            [],
            pdf=pdf,
            single_file=single_file,
            use_cache=not no_cache,
            inputs=[case_file],
        )
    for file, reason in failures:
        click.echo(f"warning: {file}: {reason}", err=True)
    page = out / "cases" / case.id / "index.html"
    click.echo(f"{case.id}: explained {result.attribution.explained:.4f} -> {page}")


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=DEFAULT_SITE,
    show_default=True,
)
@click.option("--no-cache", is_flag=True, help="Recompute every case.")
@click.option(
    "--keep-going",
    is_flag=True,
    help="Build every valid case; report the failed ones and exit non-zero at the end.",
)
@click.option("--pdf/--no-pdf", default=True, show_default=True)
@click.option("--single-file", is_flag=True, help="Each dossier as one self-contained .html.")
@runtime_options
@execution_options
@one_line_errors
def build(
    paths: tuple[Path, ...],
    out: Path,
    no_cache: bool,
    keep_going: bool,
    pdf: bool,
    single_file: bool,
    runtime: Any,
    execution: Any,
) -> None:
    """Build the static site for PATHS (default: cases/)."""
    quiet_libraries()
    from ..build import build as build_site

    report = build_site(
        paths or (Path("cases"),),
        out,
        use_cache=not no_cache,
        keep_going=keep_going,
        pdf=pdf,
        single_file=single_file,
        command=command_line(),
        options=runtime,
        execution=execution,
    )
    click.echo(
        f"site: {report.out / 'index.html'} ({len(report.built)} computed, {len(report.cached)} from cache, "
        f"{len(report.failures)} failed)"
    )
    for path, reason in report.failures:
        click.echo(f"FAILED {path}: {reason}", err=True)
    if report.failures:
        sys.exit(1)


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@one_line_errors
def validate(paths: tuple[Path, ...]) -> None:
    """Check case files; every problem names the file and the field."""
    from ..build import warn_unused_model_settings
    from ..cases import load_cases
    from ..errors import CaseError
    from ..project import find_project_file, load_project

    paths = paths or (Path("cases"),)
    cases, errors = load_cases(paths)
    if cases:  # the tokens, with each model's tokenizer where it is on disk (no weights)
        quiet_libraries()
        from ..precheck import token_problems

        problems = token_problems(cases)
        failed = {problem.path for problem in problems}
        cases = [case for case in cases if case.path not in failed]
        errors.extend(problems)
    try:  # the project file the build would read, checked as the build checks it
        project = load_project(find_project_file(list(paths)))
    except CaseError as exc:
        errors.append(exc)
    else:
        warn_unused_model_settings(project, cases)
    for error in errors:
        click.echo(f"error: {error}", err=True)
    click.echo(f"{len(cases)} valid, {len(errors)} invalid")
    if errors or not cases:
        sys.exit(1)
