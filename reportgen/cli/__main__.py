"""`python -m reportgen.cli` (the worker processes and the tests use it)."""

from . import main

main()
