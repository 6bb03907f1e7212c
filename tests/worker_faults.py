"""Kill worker processes on purpose (see ``tests/faults/sitecustomize.py``)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

FAULTS = Path(__file__).resolve().parent / "faults"
FAULT_DIR_ENV = "REPORTGEN_TEST_FAULT_DIR"


@contextmanager
def worker_faults(folder: Path) -> Iterator[Path]:
    """Worker processes started inside this block die as the files in ``folder`` say."""
    saved = {name: os.environ.get(name) for name in (FAULT_DIR_ENV, "PYTHONPATH")}
    os.environ[FAULT_DIR_ENV] = str(folder)
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(FAULTS), saved["PYTHONPATH"]) if p)
    try:
        yield folder
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
