"""Publishing: `reportgen pages init` (the GitHub Pages workflow) and `reportgen publish`
(the built site onto a gh-pages branch, from any folder, ignored or not)."""

from __future__ import annotations

from pathlib import Path

import click

from .common import DEFAULT_SITE, one_line_errors


@click.group()
def pages() -> None:
    """GitHub Pages: `reportgen pages init` writes the workflow that builds and deploys."""


@pages.command("init")
@click.option(
    "--repo",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="The repository's root folder.",
)
@click.option("--force", is_flag=True, help="Replace a workflow file that differs.")
@one_line_errors
def pages_init(repo: Path, force: bool) -> None:
    """Write .github/workflows/pages.yml: on every push to main, set up, `reportgen build`,
    upload site/_build and deploy it (actions/upload-pages-artifact + actions/deploy-pages)."""
    from ..publish import write_workflow

    path = write_workflow(repo, force=force)
    click.echo(
        f"wrote {path}; commit and push it, then set Settings -> Pages -> Source: GitHub Actions"
    )


@click.command()
@click.option(
    "--site",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_SITE,
    show_default=True,
    help="The built site (reportgen build --out).",
)
@click.option("--branch", default="gh-pages", show_default=True)
@click.option(
    "--repo",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="The git repository to commit into.",
)
@click.option("--push", "remote", metavar="REMOTE", help="Then push the branch to REMOTE.")
@click.option("--message", "-m", default="Publish the reportgen site", show_default=True)
@one_line_errors
def publish(site: Path, branch: str, repo: Path, remote: str | None, message: str) -> None:
    """Commit the built site as the whole tree of BRANCH (default gh-pages) with git plumbing:
    works although site/_build is ignored; the work tree, index and current branch stay as
    they are. Serve it with Settings -> Pages -> Deploy from a branch -> gh-pages / (root)."""
    from ..publish import publish_branch

    commit, n = publish_branch(site, repo=repo, branch=branch, message=message, push=remote)
    pushed = f", pushed to {remote}" if remote else f"; push with: git push origin {branch}"
    click.echo(f"{branch} -> {commit[:12]} ({n} files from {site}){pushed}")
