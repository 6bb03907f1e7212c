"""The `reportgen` command line: each command parses, calls one library function, and turns
expected failures into a one-line message and a non-zero exit. One module per family of
commands; importing them registers the commands on ``main``."""

from . import collect, explain, site, tools  # noqa: F401  (registers the commands)
from .common import main

__all__ = ["main"]
