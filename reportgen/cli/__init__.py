"""The `reportgen` command line: each command parses, calls one library function, and turns
expected failures into a one-line message and a non-zero exit. One module per family of
commands; the group below is assembled from them explicitly."""

from .common import main
from .explain import attribute, graph
from .failures import collect
from .publish import pages, publish
from .site import build, run, validate
from .tools import explore, models, serve

for _command in (
    attribute,
    graph,
    run,
    build,
    validate,
    collect,
    models,
    explore,
    serve,
    pages,
    publish,
):
    main.add_command(_command)

__all__ = ["main"]
