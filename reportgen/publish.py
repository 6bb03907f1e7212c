"""Getting dossiers out: one file to attach, one zip, a gh-pages branch, a Pages workflow.

- :func:`write_single_file`: one dossier as exactly one self-contained ``.html`` (styles, Vega
  runtime and every download embedded; no relative link).
- :func:`write_zip`: the one-case site folder as one ``.zip`` under GitHub's attachment limit.
- :func:`publish_branch`: commit a built site onto a branch (``gh-pages``) with git plumbing,
  from any folder (an ignored ``site/_build`` too), without touching the work tree or index.
- :data:`PAGES_WORKFLOW`: the GitHub Actions workflow that builds and deploys the site."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import zipfile
from collections.abc import Iterable
from pathlib import Path

from .cache_files import replace_atomically
from .errors import ReportgenError

#: GitHub's limit for a file attached to an issue or pull request (25 MB)
ZIP_LIMIT = 25 * 1000 * 1000


class PublishError(ReportgenError):
    """A dossier or site that cannot be written or published as asked."""


def _check_file_out(out: Path, suffix: str, flag: str) -> Path:
    if out.suffix.lower() != suffix:
        raise PublishError(f"--out {out}: {flag} writes one file; give a name ending in {suffix}")
    if out.is_dir():
        raise PublishError(f"--out {out}: a folder of that name exists; {flag} writes one file")
    return out


def check_single_file_out(out: Path) -> Path:
    return _check_file_out(out, ".html", "--single-file")


def check_zip_out(out: Path) -> Path:
    return _check_file_out(out, ".zip", "--zip")


def _render_one_case(
    result: object, folder: Path, *, pdf: bool, use_cache: bool, single_file: bool, inputs: Iterable
) -> list[tuple[str, str]]:
    from .build import render_site

    return render_site(
        [result],
        folder,
        [],
        pdf=pdf,
        single_file=single_file,
        use_cache=use_cache,
        inputs=list(inputs),
        standalone=single_file,
    )


def write_single_file(
    result: object, out: Path, *, pdf: bool, use_cache: bool = True, inputs: Iterable = ()
) -> list[tuple[str, str]]:
    """The dossier of ``result`` as exactly the one file ``out``; returns PDF failures."""
    out = check_single_file_out(Path(out))
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        failures = _render_one_case(
            result, work / "site", pdf=pdf, use_cache=use_cache, single_file=True, inputs=inputs
        )
        page = work / "site" / "cases" / result.case_id / "index.html"  # type: ignore[attr-defined]
        replace_atomically(out, page.read_bytes(), mode=0o644)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return failures


def write_zip(
    result: object,
    out: Path,
    *,
    pdf: bool,
    use_cache: bool = True,
    inputs: Iterable = (),
    limit: int = ZIP_LIMIT,
) -> tuple[list[tuple[str, str]], int]:
    """The one-case site (index, assets, ``cases/<id>/`` with every download) as one zip with
    a top folder named after the case; refused (nothing written) above ``limit`` bytes.
    Returns the PDF failures and the zip's size."""
    out = check_zip_out(Path(out))
    out.parent.mkdir(parents=True, exist_ok=True)
    case_id = result.case_id  # type: ignore[attr-defined]
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        site = work / "site"
        failures = _render_one_case(
            result, site, pdf=pdf, use_cache=use_cache, single_file=False, inputs=inputs
        )
        tmp = work / "dossier.zip"
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
            for path in sorted(site.rglob("*")):
                rel = path.relative_to(site).as_posix()
                if path.is_file() and not rel.startswith(".reportgen"):
                    zf.write(path, f"{case_id}/{rel}")
        size = tmp.stat().st_size
        if size >= limit:
            raise PublishError(
                f"--out {out}: the zip would be {size / 1e6:.1f} MB, over GitHub's "
                f"{limit / 1e6:.0f} MB attachment limit; try --no-pdf, or --single-file"
            )
        os.chmod(tmp, 0o644)
        tmp.replace(out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return failures, size


# --- a site onto a branch ---------------------------------------------------------------------


def _git(
    repo: Path, *args: str, env: dict[str, str] | None = None, input: str | None = None
) -> str:
    try:
        done = subprocess.run(
            ["git", "-C", str(repo), *args],
            capture_output=True,
            text=True,
            env={**os.environ, **(env or {})},
            input=input,
            check=False,
        )
    except FileNotFoundError:
        raise PublishError("git is not installed") from None
    if done.returncode != 0:
        message = (done.stderr.strip() or done.stdout.strip()).splitlines()
        raise PublishError(f"git {args[0]}: {message[-1] if message else 'failed'}")
    return done.stdout.strip()


def publish_branch(
    site: Path,
    *,
    repo: Path = Path("."),
    branch: str = "gh-pages",
    message: str = "Publish the reportgen site",
    push: str | None = None,
) -> tuple[str, int]:
    """Commit every file of ``site`` (the built site, ignored or not) as the whole tree of
    ``branch`` in ``repo``: a new commit on top of the branch (or its first), made with a
    temporary index, so the work tree, the index and the checked-out branch are untouched.
    ``push``: a remote to push the branch to. Returns (commit, number of files)."""
    site = Path(site)
    if not (site / "index.html").is_file():
        raise PublishError(f"{site}: no index.html; build the site first (reportgen build)")
    try:
        top = Path(_git(repo, "rev-parse", "--show-toplevel"))
    except PublishError:
        raise PublishError(f"--repo {repo}: not a git repository (git init, or --repo)") from None
    try:
        _git(top, "check-ref-format", "--branch", branch)
    except PublishError:
        raise PublishError(f"--branch {branch!r}: not a valid branch name") from None
    files = [p for p in sorted(site.rglob("*")) if p.is_file() or p.is_symlink()]
    files = [p for p in files if p.name not in (".reportgen-site",)]
    with tempfile.TemporaryDirectory(prefix="reportgen-publish-") as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        lines = []
        for path in files:
            if path.is_symlink():
                raise PublishError(f"{path}: a symbolic link in the site; publish plain files")
            blob = _git(top, "hash-object", "-w", "--", str(path.resolve()))
            rel = path.relative_to(site).as_posix()
            lines.append(f"100644 {blob}\t{rel}")
        _git(top, "update-index", "--add", "--index-info", env=env, input="\n".join(lines) + "\n")
        tree = _git(top, "write-tree", env=env)
    ref = f"refs/heads/{branch}"
    try:
        parent = _git(top, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    except PublishError:
        parent = ""
    if parent and _git(top, "rev-parse", f"{parent}^{{tree}}") == tree:
        commit = parent  # nothing changed: no empty commit
    else:
        ident = {
            "GIT_AUTHOR_NAME": os.environ.get("GIT_AUTHOR_NAME", "reportgen"),
            "GIT_AUTHOR_EMAIL": os.environ.get("GIT_AUTHOR_EMAIL", "reportgen@localhost"),
            "GIT_COMMITTER_NAME": os.environ.get("GIT_COMMITTER_NAME", "reportgen"),
            "GIT_COMMITTER_EMAIL": os.environ.get("GIT_COMMITTER_EMAIL", "reportgen@localhost"),
        }
        args = ["commit-tree", tree, "-m", message, *(["-p", parent] if parent else [])]
        commit = _git(top, *args, env=ident)
        _git(
            top, "update-ref", "-m", "reportgen publish", ref, commit, *([parent] if parent else [])
        )
    if push:
        _git(top, "push", push, f"{ref}:{ref}")
    return commit, len(files)


# --- GitHub Actions -----------------------------------------------------------------------------

WORKFLOW_PATH = Path(".github/workflows/pages.yml")

PAGES_WORKFLOW = """\
# Build the reportgen site and deploy it to GitHub Pages.
# Once: Settings -> Pages -> Build and deployment -> Source: "GitHub Actions".
name: pages

on:
  push:
    branches: [main]
  workflow_dispatch:

permissions:
  contents: read
  pages: write
  id-token: write

concurrency:
  group: pages
  cancel-in-progress: false

jobs:
  build:
    runs-on: ubuntu-latest
    timeout-minutes: 340   # a first build computes every case (later runs reuse the cache)
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-python@v5
        with:
          python-version: "3.11"
      - name: Cache models and results
        uses: actions/cache@v4
        with:
          path: ~/.cache/reportgen
          key: reportgen-${{ hashFiles('cases/**', 'reportgen/**', 'lxt/**') }}
          restore-keys: reportgen-
      - name: Set up
        run: ./scripts/setup.sh   # uses sudo for the Debian packages
      - name: Build the site
        run: .venv/bin/reportgen build --out site/_build
      - uses: actions/upload-pages-artifact@v3
        with:
          path: site/_build

  deploy:
    needs: build
    runs-on: ubuntu-latest
    environment:
      name: github-pages
      url: ${{ steps.deployment.outputs.page_url }}
    steps:
      - id: deployment
        uses: actions/deploy-pages@v4
"""


def write_workflow(repo: Path, *, force: bool = False) -> Path:
    """Write :data:`PAGES_WORKFLOW` to ``repo/.github/workflows/pages.yml``."""
    path = Path(repo) / WORKFLOW_PATH
    if path.exists() and not force and path.read_text(encoding="utf-8") != PAGES_WORKFLOW:
        raise PublishError(f"{path} exists and differs; --force replaces it")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(PAGES_WORKFLOW, encoding="utf-8")
    return path
