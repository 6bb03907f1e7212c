"""`reportgen collect` (failure collection): run a benchmark, pin each failure by strict recovery, write case files."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click

from .common import (
    execution_options,
    model_option,
    one_line_errors,
    quiet_libraries,
    runtime_options,
)


@click.command()
@click.argument("benchmark")
@model_option()
@click.option("--models", "models_csv", help="Comma-separated models: the same items on each.")
@click.option("--items", "items_csv", help="Comma-separated item ids (e.g. HumanEval/12).")
@click.option("--limit", type=click.IntRange(min=1), help="Only the first N items.")
@click.option(
    "--budget",
    type=click.IntRange(min=1),
    default=32,
    show_default=True,
    help="Continuations tried per failure.",
)
@click.option(
    "--top-k",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="Alternatives tried per position.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    help="Items generated together (part of the journal key).",
)
@click.option(
    "--search-batch-size",
    type=click.IntRange(min=1),
    default=None,
    help="Continuations of one failure generated together (default: the whole --budget).",
)
@click.option("--max-new-tokens", type=click.IntRange(min=1), help="Default: the benchmark's.")
@click.option(
    "--min-gap",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    help="Search only pairs the model separates by this logit gap (0: every pair).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("cases"),
    show_default=True,
    help="Cases go to OUT/<benchmark>/.",
)
@click.option(
    "--time-limit",
    type=click.FloatRange(min=0),
    help="Seconds: items not generated or searched by then are reported (a rerun resumes).",
)
@click.option("--force", is_flag=True, help="Overwrite case files that were edited by hand.")
@click.option(
    "--compare",
    "compare_csv",
    help="Comma-separated models every written case also runs on (its `compare`), e.g. the "
    "other size of the family: does the failure persist?",
)
@click.option(
    "--id-suffix",
    default="",
    help="Appended to every case id and file name (e.g. -qwen05b): a second model's cases of "
    "one benchmark beside the first's in one site.",
)
@click.option(
    "--recheck",
    is_flag=True,
    help="No new search: re-verify the cases already in OUT/<benchmark>/ under the current "
    "rules, rewrite those that hold, delete the others.",
)
@click.option(
    "--data",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="FILE.jsonl of your own items (benchmark jsonl; instructions: other prompts).",
)
@runtime_options
@execution_options
@one_line_errors
def collect(
    benchmark: str,
    model_spec: str,
    models_csv: str | None,
    items_csv: str | None,
    limit: int | None,
    budget: int,
    top_k: int,
    batch_size: int,
    search_batch_size: int | None,
    max_new_tokens: int | None,
    min_gap: float,
    out: Path,
    time_limit: float | None,
    force: bool,
    compare_csv: str | None,
    id_suffix: str,
    recheck: bool,
    data: Path | None,
    runtime: Any,
    execution: Any,
) -> None:
    """Run a model on BENCHMARK (humaneval, instructions, arithmetic, jsonl), pin each failure
    to a token pair by strict recovery, and write the pairs as case files."""
    if items_csv and limit:
        raise click.ClickException("give --items or --limit, not both")
    models = [m.strip() for m in models_csv.split(",") if m.strip()] if models_csv else [model_spec]
    items = [i.strip() for i in items_csv.split(",") if i.strip()] if items_csv else None
    if items_csv is not None and not items:
        raise click.ClickException(
            f"--items {items_csv!r} names no item id; give ids like HumanEval/12"
        )
    if models_csv is not None and not models:
        raise click.ClickException(f"--models {models_csv!r} names no model")
    compare = [m.strip() for m in compare_csv.split(",") if m.strip()] if compare_csv else []
    if compare_csv is not None and not compare:
        raise click.ClickException(f"--compare {compare_csv!r} names no model")
    if id_suffix and (not re.fullmatch(r"[A-Za-z0-9._-]+", id_suffix) or ".." in id_suffix):
        raise click.ClickException(f"--id-suffix {id_suffix!r}: use letters, digits, . _ -")
    quiet_libraries()
    from ..collect.driver import Settings
    from ..collect.driver import collect as run_collect
    from ..collect.driver import recheck as run_recheck
    from ..project import find_project_file, load_project

    project = load_project(find_project_file([out]))
    if recheck:
        if execution.jobs > 1 or execution.executor != "local":
            click.echo(
                "warning: --recheck runs in this process (one pair per case); "
                "--jobs/--executor do not apply",
                err=True,
            )
        checked = run_recheck(
            benchmark,
            settings=Settings(min_gap=min_gap, explain_check=False),
            out=out,
            data=data,
            log=lambda msg: click.echo(msg, err=True),
            options=runtime,
            project=project,
            force=force,
        )
        click.echo(
            f"{checked['benchmark']}: {checked['items']} shipped cases re-checked, "
            f"{checked['pinned']} hold, {checked['items'] - checked['pinned']} dropped "
            f"in {checked['wall_s']:.0f}s -> {out / checked['benchmark']}"
        )
        return

    summary = run_collect(
        benchmark,
        models,
        items=items,
        limit=limit,
        settings=Settings(
            budget=budget,
            top_k=top_k,
            batch_size=batch_size,
            search_batch_size=search_batch_size,
            max_new_tokens=max_new_tokens,
            time_limit=time_limit,
            min_gap=min_gap,
        ),
        out=out,
        force=force,
        data=data,
        options=runtime,
        project=project,
        execution=execution,
        compare=compare,
        id_suffix=id_suffix,
    )
    for run in summary["runs"]:
        kept = [c for c, status in run["files"].items() if status == "kept"]
        if kept:
            click.echo(f"kept hand-edited (use --force): {', '.join(kept)}", err=True)
    rate = f"{summary['pin_rate']:.0%}" if summary["pin_rate"] is not None else "n/a"
    resumed = [r["resumed"] for r in summary["runs"] if r.get("resumed")]
    earlier = (
        f" ({sum(r['generated'] for r in resumed)} generations and "
        f"{sum(r['searched'] for r in resumed)} searches taken from earlier runs)"
        if resumed
        else ""
    )
    click.echo(
        f"{summary['benchmark']}: {summary['items']} items, {summary['passed']} passed, "
        f"{summary['failed']} failed, {summary['pinned']} pinned ({rate}) in {summary['wall_s']:.0f}s"
        f"{earlier} -> {out / summary['benchmark']}"
    )
    funnel = summary["funnel"]
    click.echo(
        f"funnel: {funnel['failed']} failed, {sum(funnel['not_clean_failure'].values())} no clean "
        f"failure, {funnel['searched']} searched, {funnel['continuations']} continuations, "
        f"rejected {funnel['rejected'] or '{}'}, pinned {funnel['pinned']} (min gap {min_gap:g})"
    )
