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


def fast_option(func: Any) -> Any:
    """--fast (alias --no-faithfulness): quick mode for triage."""
    return click.option(
        "--fast",
        "--no-faithfulness",
        "fast",
        is_flag=True,
        help="Quick mode: skip the faithfulness test (deletion curves, flip-k, AOPC; most of a "
        "short case's time) and, unless --pdf is given, the PDF figure set. Attribution and "
        "graph numbers are the full build's; the dossier says what was skipped; cached apart "
        "from full results.",
    )(func)


@click.command()
@click.argument("case_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    required=True,
    help="Folder for the dossier (a one-case site); FILE.html with --single-file; FILE.zip "
    "with --zip.",
)
@click.option(
    "--pdf/--no-pdf",
    default=None,
    help="Also compile the LaTeX figure set (default: yes, but not with --fast).",
)
@click.option(
    "--single-file",
    is_flag=True,
    help="Write exactly one self-contained FILE.html to attach to a bug report: styles, charts "
    "and every download (data.json, CSVs, npz, PDF) embedded; works offline, alone.",
)
@click.option(
    "--zip",
    "as_zip",
    is_flag=True,
    help="Write the dossier folder (a one-case site) as one FILE.zip; refused over GitHub's "
    "25 MB attachment limit.",
)
@fast_option
@click.option("--no-cache", is_flag=True, help="Recompute even if a cached result exists.")
@runtime_options
@one_line_errors
def run(
    case_file: Path,
    out: Path,
    pdf: bool | None,
    single_file: bool,
    as_zip: bool,
    fast: bool,
    no_cache: bool,
    runtime: Any,
) -> None:
    """One dossier (HTML + data, PDF figure set) for CASE_FILE: a one-case site, rendered the way
    `build` renders (staging folder swapped in, cached figure sets); or, to attach to a bug
    report, one self-contained .html (--single-file) or one .zip (--zip)."""
    from ..cache_files import clean_temporaries
    from ..cases import load_case
    from ..outdir import build_lock, check_one_case_out, check_out_folder, clean_stale
    from ..project import find_project_file, load_project
    from ..publish import check_single_file_out, check_zip_out

    if single_file and as_zip:
        raise click.ClickException("--single-file and --zip each write one file: choose one")
    pdf = (not fast) if pdf is None else pdf
    case = load_case(case_file)
    one_file = single_file or as_zip
    if single_file:
        check_single_file_out(out)
    elif as_zip:
        check_zip_out(out)
    else:
        resolved = check_out_folder(out, [case_file])
        check_one_case_out(resolved, case.id)
    project = load_project(find_project_file([case_file]))
    quiet_libraries()
    from ..build import BuildReport, compute_results, render_site, warn_unused_model_settings

    warn_unused_model_settings(project, [case])
    from ..progress import case_steps

    def compute() -> Any:
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
            fast=fast,
        )
        status_line("")
        return result

    if one_file:
        from ..publish import write_single_file, write_zip

        clean_temporaries()
        result = compute()
        kwargs = {"pdf": pdf, "use_cache": not no_cache, "inputs": [case_file]}
        if single_file:
            failures = write_single_file(result, out, **kwargs)
            what = "one self-contained file"
        else:
            failures, size = write_zip(result, out, **kwargs)
            what = f"zip of {size / 1e6:.1f} MB"
        for file, reason in failures:
            click.echo(f"warning: {file}: {reason}", err=True)
        click.echo(f"{case.id}: explained {result.attribution.explained:.4f} -> {out} ({what})")
        return
    with build_lock(resolved, command_line()):  # before anything is computed
        clean_stale(resolved)
        clean_temporaries()
        check_one_case_out(resolved, case.id)  # it may have changed before the lock was ours
        result = compute()
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
@click.option(
    "--pdf/--no-pdf",
    default=None,
    help="Compile the PDF figure sets (default: yes, not with --fast).",
)
@click.option(
    "--single-file",
    is_flag=True,
    help="Each dossier as one self-contained .html (styles, charts and downloads embedded).",
)
@fast_option
@runtime_options
@execution_options
@one_line_errors
def build(
    paths: tuple[Path, ...],
    out: Path,
    no_cache: bool,
    keep_going: bool,
    pdf: bool | None,
    single_file: bool,
    fast: bool,
    runtime: Any,
    execution: Any,
) -> None:
    """Build the static site for PATHS (default: cases/)."""
    pdf = (not fast) if pdf is None else pdf
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
        fast=fast,
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
